#!/usr/bin/env python3
"""Independent checks of constrained outputs (tests/test_constraint.c).

usage: check.py MANIFEST.jsonl OUTPUT.jsonl
MANIFEST lines: {"id":..., "kind":"schema"|"regex"|"grammar", "spec":...}
  schema: the JSON Schema (object); regex: the pattern; grammar: a GBNF file path.
OUTPUT: inferno-model generate --batch lines.
Every output that finished with "stop" must be accepted: json.loads +
jsonschema (Draft 7, with format checks for date, time, date-time, uuid),
re.fullmatch, or the Earley recognizer below, a second GBNF implementation
written from llama.cpp's grammars/README.md. Prints counts; exit 1 on a failure.
"""
import datetime
import json
import re
import sys
import uuid

import jsonschema


# ---- GBNF: parser to a CFG over code points, Earley recognizer ----

class Gbnf:
    def __init__(self, text):
        self.s, self.i = text, 0
        self.rules = {}  # name -> list of alternatives (lists of symbols)
        self.n_gen = 0
        self.ws(True)
        while self.i < len(self.s):
            self.rule()
        self.nullable = self.compute_nullable()

    def ws(self, nl):
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == '#':
                while self.i < len(s) and s[self.i] not in '\r\n':
                    self.i += 1
            elif c in ' \t' or (nl and c in '\r\n'):
                self.i += 1
            else:
                break

    def name(self):
        m = re.compile(r'[a-zA-Z0-9-]+').match(self.s, self.i)
        if not m:
            raise ValueError('name expected at %d' % self.i)
        self.i = m.end()
        return m.group(0)

    def char(self):
        s = self.s
        if s[self.i] == '\\':
            e = s[self.i + 1]
            n = {'x': 2, 'u': 4, 'U': 8}.get(e)
            if n:
                v = int(s[self.i + 2:self.i + 2 + n], 16)
                self.i += 2 + n
                return v
            self.i += 2
            return ord({'n': '\n', 'r': '\r', 't': '\t'}.get(e, e))
        self.i += 1
        return ord(s[self.i - 1])

    def gen(self, alts):
        self.n_gen += 1
        name = '@%d' % self.n_gen
        self.rules[name] = alts
        return ('ref', name)

    def rule(self):
        n = self.name()
        self.ws(False)
        assert self.s.startswith('::=', self.i), 'expected ::='
        self.i += 3
        self.ws(True)
        self.rules[n] = self.alts(False)
        self.ws(True)

    def alts(self, nested):
        out = [self.seq(nested)]
        while self.i < len(self.s) and self.s[self.i] == '|':
            self.i += 1
            self.ws(True)
            out.append(self.seq(nested))
        return out

    def seq(self, nested):
        items = []
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == '"':
                self.i += 1
                lit = []
                while s[self.i] != '"':
                    lit.append(('cls', [(v, v) for v in [self.char()]], False))
                self.i += 1
                items.append(self.gen([lit]))
            elif c == '[':
                self.i += 1
                neg = s[self.i] == '^'
                if neg:
                    self.i += 1
                rng = []
                while s[self.i] != ']':
                    lo = self.char()
                    hi = lo
                    if s[self.i] == '-' and s[self.i + 1] != ']':
                        self.i += 1
                        hi = self.char()
                    rng.append((lo, hi))
                self.i += 1
                items.append(('cls', rng, neg))
            elif c == '.':
                self.i += 1
                items.append(('cls', [], True))
            elif c == '(':
                self.i += 1
                self.ws(True)
                a = self.alts(True)
                assert s[self.i] == ')'
                self.i += 1
                items.append(self.gen(a))
            elif re.match(r'[a-zA-Z0-9-]', c):
                items.append(('ref', self.name()))
            elif c in '*+?{':
                self.i += 1
                lo, hi = {'*': (0, None), '+': (1, None), '?': (0, 1)}.get(c, (None, None))
                if c == '{':
                    m = re.compile(r'\s*(\d*)\s*(,?)\s*(\d*)\s*\}').match(s, self.i)
                    self.i = m.end()
                    lo = int(m.group(1) or 0)
                    hi = (int(m.group(3)) if m.group(3) else None) if m.group(2) else lo
                items[-1] = self.repeat(items[-1], lo, hi)
            else:
                break
            self.ws(nested)
        return items

    def repeat(self, sym, lo, hi):
        # sym{lo,hi} as rules: lo copies then an optional tail
        alts = []
        if hi is None:
            self.n_gen += 1
            star = '@%d' % self.n_gen
            self.rules[star] = [[sym, ('ref', star)], []]
            return self.gen([[sym] * lo + [('ref', star)]])
        return self.gen([[sym] * k for k in range(lo, hi + 1)])

    def compute_nullable(self):
        nul = set()
        changed = True
        while changed:
            changed = False
            for n, alts in self.rules.items():
                if n not in nul and any(all(x[0] == 'ref' and x[1] in nul for x in a) for a in alts):
                    nul.add(n)
                    changed = True
        return nul

    @staticmethod
    def match_cls(sym, cp):
        hit = any(lo <= cp <= hi for lo, hi in sym[1])
        return hit != sym[2]

    def accepts(self, text):
        # Earley items: (rule, alt index, dot, origin)
        R = self.rules
        chart = [set() for _ in range(len(text) + 1)]
        for k in range(len(R['root'])):
            chart[0].add(('root', k, 0, 0))
        for i in range(len(text) + 1):
            agenda = list(chart[i])
            while agenda:
                it = agenda.pop()
                n, k, d, o = it
                alt = R[n][k]
                if d < len(alt):
                    sym = alt[d]
                    if sym[0] == 'ref':
                        m = sym[1]
                        for kk in range(len(R[m])):
                            ni = (m, kk, 0, i)
                            if ni not in chart[i]:
                                chart[i].add(ni)
                                agenda.append(ni)
                        if m in self.nullable:
                            ni = (n, k, d + 1, o)
                            if ni not in chart[i]:
                                chart[i].add(ni)
                                agenda.append(ni)
                    elif i < len(text) and self.match_cls(sym, ord(text[i])):
                        chart[i + 1].add((n, k, d + 1, o))
                else:
                    for (pn, pk, pd, po) in list(chart[o]):
                        palt = R[pn][pk]
                        if pd < len(palt) and palt[pd] == ('ref', n):
                            ni = (pn, pk, pd + 1, po)
                            if ni not in chart[i]:
                                chart[i].add(ni)
                                agenda.append(ni)
            if i < len(text) and not chart[i + 1]:
                return False
        return any(n == 'root' and d == len(R[n][k]) and o == 0 for (n, k, d, o) in chart[len(text)])


# ---- formats ----

fc = jsonschema.FormatChecker()


@fc.checks('date')
def _date(s):
    return bool(re.fullmatch(r'\d{4}-\d{2}-\d{2}', s)) and bool(datetime.date.fromisoformat(s))


@fc.checks('time', raises=ValueError)
def _time(s):
    m = re.fullmatch(r'(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})', s)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3)) > 59:
        raise ValueError(s)
    return True


@fc.checks('date-time', raises=ValueError)
def _dt(s):
    d, t = s.split('T')
    return _date(d) and _time(t)


@fc.checks('uuid', raises=ValueError)
def _uuid(s):
    return bool(re.fullmatch(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', s)) and bool(uuid.UUID(s))


def main():
    man = {}
    for line in open(sys.argv[1], encoding='utf-8'):
        if line.strip():
            m = json.loads(line)
            man[m['id']] = m
    grammars = {}
    n = {'stop': 0, 'length': 0, 'ok': 0, 'bad': 0, 'error': 0}
    for line in open(sys.argv[2], encoding='utf-8'):
        o = json.loads(line)
        if o.get('summary'):
            continue
        m = man[o['id']]
        if 'error' in o:
            n['error'] += 1
            print('ERROR %s: %s' % (o['id'], o['error']))
            continue
        n[o['finish_reason']] = n.get(o['finish_reason'], 0) + 1
        if o['finish_reason'] != 'stop':
            continue
        text, ok, why = o['text'], False, ''
        try:
            if m['kind'] == 'schema':
                jsonschema.validate(json.loads(text), m['spec'], cls=jsonschema.Draft7Validator, format_checker=fc)
                ok = True
            elif m['kind'] == 'regex':
                ok = re.fullmatch(m['spec'], text) is not None
            else:
                g = grammars.get(m['spec']) or Gbnf(open(m['spec'], encoding='utf-8').read())
                grammars[m['spec']] = g
                ok = g.accepts(text)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            why = repr(e)[:300]
        n['ok' if ok else 'bad'] += 1
        if not ok:
            print('BAD %s (%s): %r %s' % (o['id'], m['kind'], text[:300], why))
    print('checked: %(ok)d accepted, %(bad)d rejected; finished stop %(stop)d, length %(length)d; errors %(error)d' % n)
    sys.exit(1 if n['bad'] or n['error'] else 0)


if __name__ == '__main__':
    main()
