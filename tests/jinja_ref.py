#!/usr/bin/python3
"""Reference renderings for the chat-template suites, made at test time by
Debian's python3-jinja2 set up as Hugging Face's apply_chat_template sets it up
(../shared/chat_templates/README.md):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=["jinja2.ext.loopcontrols"])
    tojson = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
    globals raise_exception(msg) (raises TemplateError) and strftime_now(fmt)

usage: jinja_ref.py OUTDIR TEMPLATE_DIR NOW

Writes OUTDIR/chat/cases.tsv, one line per template x conversation:
    id  template  messages.json  tools.json|-  agp(0/1)  vars.json|-  expected|-  error
(expected: the file with jinja2's output; '-' when jinja2 refused, then error
is its message, and 'raise' or 'other' says whether raise_exception raised it),
and OUTDIR/features/cases.tsv for the interpreter's unit cases:
    id  template  vars.json  expected|-  error
Run with /usr/bin/python3 so the Debian package is the one imported.
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

OUT, TEMPLATE_DIR, NOW = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Raised(Exception):
    pass


def env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW).strftime(fmt)

    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = strftime_now
    return e


def render(src, variables):
    """(text, None) or (None, (kind, message))."""
    try:
        return env().from_string(src).render(**variables), None
    except jinja2.exceptions.TemplateError as ex:
        kind = "raise" if type(ex) is jinja2.exceptions.TemplateError else "other"
        return None, (kind, str(ex))
    except Exception as ex:  # TypeError, ValueError, ... raised by Python itself
        return None, ("other", str(ex))


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
        "days": {"type": "integer", "description": "Forecast days", "minimum": 1, "maximum": 7}},
        "required": ["city"]}}}]

CALL_DICT = [{"id": "call12345", "type": "function",
              "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]
CALL_STR = [{"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]

U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}
SYS = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}

CONVERSATIONS = [
    ("single", [U("Hello! Who are you?")], None, True, None),
    ("system", [SYS, U("What is 2+2?")], None, True, None),
    ("multiturn", [SYS, U("Hi"), A("Hello! How can I help?"), U("Tell me a joke."),
                   A("Why did the chicken cross the road?"), U("Why?")], None, True, None),
    ("unicode_ws", [U("  héllo wörld 🌍\n\t日本語のテキスト  \n"), A(" ¿Qué tal? \u3000\n\n"),
                    U("tabs\tand\nnewlines\n\n  and \"quotes\" 'single' \\ backslash <tag> & amp")],
     None, True, None),
    ("no_gen_prompt", [U("Hi"), A("Hello."), U("Bye")], None, False, None),
    ("no_gen_prompt_last_assistant", [U("Hi"), A("Hello there.")], None, False, None),
    ("reasoning", [U("What is 17*3?"),
                   {"role": "assistant", "content": "It is 51.", "reasoning_content": "17*3 = 51."},
                   U("And 17*4?")], None, True, None),
    ("reasoning_inline", [U("What is 2+3?"), A("<think>\nadd them\n</think>\n\nIt is 5."), U("Thanks")],
     None, True, None),
    ("tool_calls", [SYS, U("Weather in Paris?"),
                    {"role": "assistant", "content": None, "tool_calls": CALL_DICT},
                    {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
                     "content": "{\"temperature\": 21, \"unit\": \"celsius\"}"},
                    A("It is 21 °C in Paris.")], TOOLS, True, None),
    ("tool_calls_str_args", [U("Weather in Paris?"),
                             {"role": "assistant", "content": None, "tool_calls": CALL_STR},
                             {"role": "tool", "tool_call_id": "call12345", "content": "21 degrees"}],
     TOOLS, True, None),
    ("tools_given", [U("What's the weather in Oslo tomorrow?")], TOOLS, True, None),
    ("tools_given_system", [SYS, U("Weather in Rome?")], TOOLS, True, None),
    ("thinking_off", [U("Quick: capital of France?")], None, True, {"enable_thinking": False}),
    ("starts_with_assistant", [A("I speak first."), U("ok")], None, True, None),
    ("two_users", [U("one"), U("two")], None, True, None),
    ("empty_content", [U(""), A(""), U("   ")], None, True, None),
    ("bad_role", [{"role": "narrator", "content": "Once upon a time"}, U("go on")], None, True, None),
]


def write(path, data, mode="w"):
    with open(path, mode, encoding=None if "b" in mode else "utf-8") as f:
        f.write(data)


def chat_cases():
    d = os.path.join(OUT, "chat")
    os.makedirs(d, exist_ok=True)
    rows = []
    templates = sorted(f for f in os.listdir(TEMPLATE_DIR) if f.endswith(".jinja"))
    for cname, msgs, tools, agp, kw in CONVERSATIONS:
        mpath = os.path.join(d, cname + ".messages.json")
        write(mpath, json.dumps(msgs, ensure_ascii=False, indent=1))
        tpath = "-"
        if tools is not None:
            tpath = os.path.join(d, cname + ".tools.json")
            write(tpath, json.dumps(tools, ensure_ascii=False))
        vpath = "-"
        if kw is not None:
            vpath = os.path.join(d, cname + ".vars.json")
            write(vpath, json.dumps(kw))
        for t in templates:
            tp = os.path.join(TEMPLATE_DIR, t)
            with open(tp, "rb") as f:
                src = f.read().decode("utf-8")
            variables = {"messages": json.loads(json.dumps(msgs)), "add_generation_prompt": agp,
                         "bos_token": "<|bos|>", "eos_token": "<|eos|>"}
            if tools is not None:
                variables["tools"] = json.loads(json.dumps(tools))
            if kw:
                variables.update(kw)
            text, err = render(src, variables)
            cid = t[:-len(".jinja")] + "." + cname
            exp, emsg, kind = "-", "", ""
            if err is None:
                exp = os.path.join(d, cid + ".expected")
                write(exp, text.encode("utf-8"), "wb")
            else:
                kind, emsg = err
                emsg = emsg.replace("\t", " ").replace("\n", " ")
            rows.append("\t".join([cid, tp, mpath, tpath, "1" if agp else "0", vpath, exp, kind, emsg]))
    write(os.path.join(d, "cases.tsv"), "\n".join(rows) + "\n")


# Interpreter features, each (template, variables) rendered by jinja2.
FEATURES = [
    ("{{ 1 + 2 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}", {}),
    ("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1.5e-5 }} {{ 0.0001 }} {{ 3.0 }} {{ -0.0 }} {{ 1e300 * 1e10 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ 2.50 }}|{{ x ~ 'y' }}", {}),
    ("{{ [1, 'a', none, true, 2.5, {'k': (1,)}, (1, 2)] }}", {}),
    ("{{ {'b': 1, 'a': [1, 2]} }} {{ \"it's\" }} {{ ['it\\'s', 'q\"', 'both\\'\"'] }}", {}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": 0, "b": []}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": "", "b": [0]}),
    ("{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}", {"xs": ["a", "b", "c"]}),
    ("{% for x in xs %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs if x is odd %}{{ x }}{{ ',' if not loop.last }}{% else %}none{% endfor %}", {"xs": [1, 2, 3, 5, 6]}),
    ("{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("{% for x in xs %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}", {"xs": [0, 1, 2, 3, 4]}),
    ("{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys()|list }}{{ d.values()|list }}", {"d": {"z": 1, "a": [2]}}),
    ("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
    ("{% set blk %}  inner {{ 1 }}  {% endset %}[{{ blk }}]{% set b2 | trim | upper %}  x y  {% endset %}[{{ b2 }}]", {}),
    ("{% filter upper %}hello {{ name }}{% endfilter %}", {"name": "bob"}),
    ("{% macro m(a, b='B', c=none) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 2) }} {{ m(1, c=3) }} {{ m() }}", {}),
    ("{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}", {}),
    ("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}{% endcall %}", {}),
    ("{% macro row(x) %}{{ caller(x * 2) }}{% endmacro %}{% call(v) row(21) %}v={{ v }}{% endcall %}", {}),
    ("{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ 'abcdef'[::2] }} {{ [1,2,3,4][1:] }} {{ [1,2,3][::-1] }} {{ 'héllo'[1:3] }}", {}),
    ("{{ xs[0] }} {{ xs[-1] }} {{ xs[5] }} {{ d.a }} {{ d['a'] }} {{ d.missing }} {{ s[1] }}", {"xs": [1, 2], "d": {"a": "A"}, "s": "héllo"}),
    ("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ s is string }} {{ d is mapping }} {{ xs is iterable }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }}", {"x": 1, "n": None, "s": "s", "d": {}, "xs": []}),
    ("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is in 'cat' }} {{ 2 is in [1, 2] }} {{ 'x' is equalto 'x' }} {{ 1 is eq 2 }} {{ false is false }} {{ 0 is false }} {{ 'abc' is lower }} {{ 'ABC' is upper }}", {}),
    ("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ true == 1 }} {{ none == none }}", {"d": {"k": 1}}),
    ("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' or [] }} {{ not 0 }} {{ not 'a' }} {{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 }}|", {}),
    ("{{ xs|length }} {{ 'héllo'|length }} {{ d|length }} {{ u|length }} {{ xs|count }}", {"xs": [1, 2, 3], "d": {"a": 1}}),
    ("[{{ '  a b  '|trim }}] [{{ 'xxaxx'|trim('x') }}] {{ 'Hello World'|upper }} {{ 'Hello World'|lower }} {{ 'hello wORLD'|title }} {{ 'hello WORLD'|capitalize }}", {}),
    ("{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'ab'|replace('', '.') }}", {}),
    ("{{ xs|join }} {{ xs|join(', ') }} {{ ds|join('|', attribute='n') }} {{ xs|first }} {{ xs|last }} {{ 'abc'|first }} {{ []|first }}|", {"xs": [1, 2, 3], "ds": [{"n": "a"}, {"n": "b"}]}),
    ("{{ u|default('dflt') }} {{ ''|default('dflt') }} {{ ''|default('dflt', true) }} {{ none|default('d') }} {{ 0|d('z', true) }}", {}),
    ("{{ ms|selectattr('role', 'equalto', 'user')|list|length }} {{ ms|rejectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }} {{ ms|selectattr('x')|list }} {{ ms|selectattr('x', 'defined')|map(attribute='x')|list }}", {"ms": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "x": 0}, {"role": "user", "content": "c", "x": 5}]}),
    ("{{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ xs|map('string')|join('-') }} {{ ss|map('upper')|list }} {{ xs|select|list }}", {"xs": [0, 1, 2, 3], "ss": ["a", "b"]}),
    ("{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '0x1A'|int(0, 16) }} {{ ' 12 '|int }} {{ '3.5'|float }} {{ 2|float }} {{ 'q'|float }}", {}),
    ("{{ 42|string ~ 'x' }} {{ [1, 'a']|string }} {{ none|string }} {{ true|string }}", {}),
    ("{{ d|tojson }} {{ d|tojson(indent=2) }} {{ xs|tojson(indent=4) }} {{ 'é\"\\n\\t<'|tojson }} {{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(',', ':')) }}", {"d": {"b": [1, 2.5, None, True], "a": {"x": "ü"}, "e": {}, "f": []}, "xs": [1, [2, []], {}]}),
    ("{{ 1|tojson }} {{ 1.0|tojson }} {{ 'x'|tojson }} {{ none|tojson }} {{ false|tojson }} {{ (1, 2)|tojson }} {{ {1: 2, true: 3}|tojson }}", {}),
    ("{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'x\\ny'|indent('--') }}", {}),
    ("{{ ['b', 'A', 'c']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ms|sort(attribute='n')|map(attribute='n')|list }} {{ ['a', 'A', 'b', 'a']|unique|list }} {{ [1, 2, 1]|reverse|list }} {{ 'abc'|reverse }}", {"ms": [{"n": 2}, {"n": 1}]}),
    ("{{ [1, 2, 3]|sum }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 'a b  c'|wordcount }}", {}),
    ("{{ '<a href=\"x\">&'|e }} {{ '<b>'|safe }} {{ 'x'|safe + '<y>' }} {{ '<y>' + 'x'|safe }} {{ ('<' ~ 'x'|safe) }}", {}),
    ("{{ ' a b '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}|{{ '\\n\\nb'.lstrip('\\n') }}|{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }}", {}),
    ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ 'a-b'.replace('-', '_') }} {{ 'the cat'.title() }} {{ 'a</think>b'.split('</think>')[-1] }}", {}),
    ("{{ 'abcabc'.find('c') }} {{ 'abc'.find('z') }} {{ 'abcabc'.count('b') }} {{ '-'.join(['a', 'b']) }} {{ 'abc'.upper().lower() }}", {}),
    ("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d.items()|list }} {{ d.items is defined }} {{ d.nokey is defined }}|", {"d": {"a": 1}}),
    ("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }}", {}),
    ("{{ strftime_now('%Y-%m-%d %H:%M %b %A') }}", {}),
    ("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 2 * 'x' }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ '%s-%d' % ('a', 3) }} {{ 'x%sy' % 'q' }}", {}),
    ("  {% if true %}\n    yes\n  {% endif %}\n  {{ 'v' }}\n{# comment #}\nafter\n  {%+ if true %}keep{% endif %}\n{% if true +%}\nplus{% endif %}", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c\n{{- ' d ' -}}\n e {#- c -#} f", {}),
    ("{% raw %}{{ not evaluated }}{% endraw %} {%- raw -%}  x  {%- endraw %}", {}),
    ("line1\r\nline2\rline3\n", {}),
    ("{{ \"\\u00e9\\x41\\101\\t|\" }} {{ 'a' 'b' }} {{ 1_000 }} {{ 0x1f }} {{ 1.5e3 }}", {}),
    ("{% if x.y is defined %}y{% else %}n{% endif %}", {"x": {}}),
    ("{{ x.y }}", {}),
    ("{{ x.y.z }}", {"x": {}}),
    ("{{ x + 1 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ 1 // 0 }}", {}),
    ("{{ x|tojson }}", {}),
    ("{{ 'a' < 1 }}", {}),
    ("{{ none.x }}", {}),
    ("{% for x in 5 %}{% endfor %}", {}),
    ("{{ range(200000)|length }}", {}),
    ("{{ raise_exception('custom refusal: ' ~ 42) }}", {}),
    ("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", {}),
    ("{{ 1 is nosuchtest }}", {}),
    ("{{ 1|nosuchfilter }}", {}),
    ("{% nosuchtag %}", {}),
    ("{% if true %}unclosed", {}),
    ("{{ 'unterminated }}", {}),
    ("{% for %}{% endfor %}", {}),
    ("{{ 1 + }}", {}),
    ("{% set ns = 1 %}{% set ns.a = 2 %}", {}),
    ("{{ x|items|list }}", {"x": [1]}),
    ("{{ 'abc'.split('') }}", {}),
    ("{{ u|items|list }} {{ u|list }} {{ u|join }} {{ u|trim }} {{ u|string }} {{ u|lower }} {{ u|first is defined }} {{ u == u }} {{ u != 1 }} {{ u is iterable }} {% for c in u %}x{% endfor %}.", {}),
    ("{{ 'x' in u }} {{ u in [1] }} {{ u ~ 'y' }} {{ [u]|length }} {{ u|default(3) }} {{ u|selectattr('a')|list }}", {}),
    ("{% for m in ms %}{% set c = m.content %}{% if c is string %}{{ c|trim }}{% else %}{{ c|tojson }}{% endif %};{% endfor %}", {"ms": [{"content": " s "}, {"content": [{"type": "text", "text": "t"}]}, {"content": None}]}),
    ("{% set d = {'a': 1, 'b': 2} %}{% for k, v in d|dictsort %}{{ k }}{{ v }}{% endfor %} {{ {'b': 1, 'a': 2}|dictsort(by='value') }}", {}),
    ("{{ 'ÀÉÎ'.lower() }} {{ 'àéî'.upper() }} {{ 'Straße'|title }}", {}),
]


def feature_cases():
    d = os.path.join(OUT, "features")
    os.makedirs(d, exist_ok=True)
    rows = []
    for i, (src, variables) in enumerate(FEATURES):
        tp = os.path.join(d, "f%03d.jinja" % i)
        write(tp, src.encode("utf-8"), "wb")
        vp = os.path.join(d, "f%03d.vars.json" % i)
        write(vp, json.dumps(variables, ensure_ascii=False))
        text, err = render(src, json.loads(json.dumps(variables)))
        exp, kind, emsg = "-", "", ""
        if err is None:
            exp = os.path.join(d, "f%03d.expected" % i)
            write(exp, text.encode("utf-8"), "wb")
        else:
            kind, emsg = err
            emsg = emsg.replace("\t", " ").replace("\n", " ")
        rows.append("\t".join(["f%03d" % i, tp, vp, exp, kind, emsg]))
    write(os.path.join(d, "cases.tsv"), "\n".join(rows) + "\n")


if __name__ == "__main__":
    chat_cases()
    feature_cases()
