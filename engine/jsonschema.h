/* jsonschema.h - JSON Schema -> GBNF (grammar.h), so a constrained output is
 * a JSON text the schema accepts.
 *
 * Supported: type (string, number, integer, boolean, null, object, array, or
 * a list of them), properties / required / additionalProperties (false,
 * true or a schema; absent means no other properties are generated), enum,
 * const, anyOf, oneOf (compiled as anyOf: the branches must not overlap,
 * which is not checked), items / minItems / maxItems, minLength / maxLength,
 * minimum / maximum / exclusiveMinimum / exclusiveMaximum for integers,
 * pattern (search semantics as JSON Schema says: unanchored patterns may
 * match anywhere in the string), $ref to "#", "#/$defs/NAME" or
 * "#/definitions/NAME" within the document, string formats date, time,
 * date-time and uuid. Annotations (title, description, $schema, $id,
 * $comment, default, examples, deprecated, readOnly, writeOnly) are ignored.
 * Every other keyword is refused with INF_EUNSUPPORTED naming it and its
 * location, e.g. "json schema: at /properties/n: keyword 'multipleOf' is not
 * supported". Output properties come in the order `properties` lists them.
 *
 * Generated text is valid JSON with at most one space where JSON allows
 * whitespace, and numbers of at most 16 significant digits.
 */
#ifndef INF_JSONSCHEMA_H
#define INF_JSONSCHEMA_H

#include <stddef.h>

#include "status.h"
#include "tools/json.h"

/* Schema text[0..len) -> GBNF (malloc'd into *gbnf). INF_EFORMAT for JSON
 * that does not parse, the errors above otherwise. */
int jsonschema_to_gbnf(const char *text, size_t len, char **gbnf, inf_error *err);

/* The same from a parsed schema (borrowed). */
int jsonschema_value_to_gbnf(const json_value *schema, char **gbnf, inf_error *err);

/* Compact JSON text of v (malloc'd, NUL-terminated), e.g. to pass a parsed
 * response_format object on as text. */
int jsonschema_value_text(const json_value *v, char **out, inf_error *err);

/* GBNF for any JSON object (response_format json_object). */
const char *jsonschema_any_object_gbnf(void);

#endif
