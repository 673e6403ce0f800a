#!/usr/bin/env python3
"""Constrained generation at temperature 1.0 on random-weights models, checked
by check.py (tests/test_constraint.c runs it).

usage: run.py BIN_DIR SHARED_DIR WORK_DIR
Models: a random tiny llama with a synthetic SPM vocabulary (byte-fallback
tokens) and one with GPT-2's byte-level BPE vocabulary. Requests: every
schema of schemas.jsonl, every regex of regexes.txt, every grammar of
SHARED/grammars and a choice list, each with several seeds, all in one
--batch run per model (so constrained rows share batches). Then the refused
schemas of unsupported.jsonl must give their exact messages. Exit 0 when
every stop output validates and enough of them finished.
"""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
bin_dir, shared, work = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(work, exist_ok=True)
model_bin = os.path.join(bin_dir, 'inferno-model')
SEEDS = [1, 2, 3]


def make_model(name, extra):
    path = os.path.join(work, name + '.gguf')
    subprocess.run([model_bin, 'random', path, '--preset', 'tiny', '--seed', '7'] + extra, check=True,
                   stdout=subprocess.DEVNULL)
    return path


def main():
    models = [make_model('spm', [])]
    gpt2 = os.path.join(shared, 'models', 'vocab', 'ggml-vocab-gpt-2.gguf')
    if os.path.exists(gpt2):
        models.append(make_model('bpe', ['--vocab-from', gpt2]))
    schemas = [json.loads(l) for l in open(os.path.join(here, 'schemas.jsonl'), encoding='utf-8') if l.strip()]
    regexes = [l.rstrip('\n') for l in open(os.path.join(here, 'regexes.txt'), encoding='utf-8') if l.strip()]
    gdir = os.path.join(shared, 'grammars')
    grammars = sorted(os.path.join(gdir, f) for f in os.listdir(gdir) if f.endswith('.gbnf')) if os.path.isdir(gdir) else []
    total_bad = 0
    for model in models:
        tag = os.path.basename(model)[:-5]
        man, batch = [], []
        for seed in SEEDS:
            for k, s in enumerate(schemas):
                rid = '%s-schema%d-s%d' % (tag, k, seed)
                man.append({'id': rid, 'kind': 'schema', 'spec': s})
                rf = {'type': 'json_schema', 'json_schema': {'name': 'x', 'schema': s, 'strict': True}}
                batch.append({'id': rid, 'prompt': 'Hello', 'seed': seed, 'response_format': rf, 'max_tokens': 160})
            for k, r in enumerate(regexes):
                rid = '%s-regex%d-s%d' % (tag, k, seed)
                man.append({'id': rid, 'kind': 'regex', 'spec': r})
                batch.append({'id': rid, 'prompt': 'Hi', 'seed': seed, 'regex': r, 'max_tokens': 64})
            for g in grammars:
                rid = '%s-%s-s%d' % (tag, os.path.basename(g)[:-5], seed)
                man.append({'id': rid, 'kind': 'grammar', 'spec': g})
                batch.append({'id': rid, 'prompt': 'Once', 'seed': seed, 'grammar': open(g, encoding='utf-8').read(),
                              'max_tokens': 160})
            rid = '%s-jsonobj-s%d' % (tag, seed)
            man.append({'id': rid, 'kind': 'schema', 'spec': {'type': 'object'}})
            batch.append({'id': rid, 'prompt': 'x', 'seed': seed, 'response_format': {'type': 'json_object'},
                          'max_tokens': 160})
            rid = '%s-choice-s%d' % (tag, seed)
            man.append({'id': rid, 'kind': 'regex', 'spec': '(positive|negative|neutral|neg)'})
            batch.append({'id': rid, 'prompt': 'x', 'seed': seed, 'choice': ['positive', 'negative', 'neutral', 'neg'],
                          'max_tokens': 16})
        mpath, bpath, opath = (os.path.join(work, tag + s) for s in ('.manifest.jsonl', '.batch.jsonl', '.out.jsonl'))
        with open(mpath, 'w', encoding='utf-8') as f:
            f.writelines(json.dumps(m) + '\n' for m in man)
        with open(bpath, 'w', encoding='utf-8') as f:
            f.writelines(json.dumps(b) + '\n' for b in batch)
        with open(opath, 'w', encoding='utf-8') as out:
            subprocess.run([model_bin, 'generate', model, '--batch', bpath, '--temperature', '1.0', '--max-num-seqs', '16',
                            '--threads', '1'], check=True, stdout=out)
        print('model %s: %d requests' % (tag, len(batch)))
        res = subprocess.run([sys.executable, os.path.join(here, 'check.py'), mpath, opath], capture_output=True, text=True)
        print(res.stdout, end='')
        total_bad += res.returncode != 0
        # Enough outputs must finish (stop) for the check to mean something.
        outs = [json.loads(l) for l in open(opath, encoding='utf-8')]
        stop = sum(1 for o in outs if o.get('finish_reason') == 'stop')
        if stop < len(batch) // 2:
            print('too few outputs finished with stop: %d of %d' % (stop, len(batch)))
            total_bad += 1
    # Refused schemas: exact messages as error lines.
    lines = [json.loads(l) for l in open(os.path.join(here, 'unsupported.jsonl'), encoding='utf-8') if l.strip()]
    bpath = os.path.join(work, 'unsupported.batch.jsonl')
    with open(bpath, 'w', encoding='utf-8') as f:
        for k, u in enumerate(lines):
            f.write(json.dumps({'id': 'u%d' % k, 'prompt': 'x',
                                'response_format': {'type': 'json_schema', 'json_schema': {'name': 'u', 'schema': u['schema']}}}) + '\n')
    res = subprocess.run([model_bin, 'generate', models[0], '--batch', bpath], capture_output=True, text=True, check=True)
    got = {o['id']: o.get('error') for o in map(json.loads, res.stdout.splitlines()) if not o.get('summary')}
    for k, u in enumerate(lines):
        want = "request 'u%d': %s" % (k, u['msg'])
        if got.get('u%d' % k) != want:
            print('unsupported u%d: got %r, want %r' % (k, got.get('u%d' % k), want))
            total_bad += 1
    print('refused schemas: %d checked' % len(lines))
    sys.exit(1 if total_bad else 0)


if __name__ == '__main__':
    main()
