#!/bin/sh
# make_tokenizer_seeds.sh - writes the seed corpus fuzz/corpus/tokenizer/ in
# the input layout of fuzz_tokenizer.c (byte 0 tokenizer, byte 1 mode, rest).
# Tokenizer numbers follow the default model list: 0 stories260K, then the
# supported vocab files in name order (1 deepseek-coder, 2 deepseek-llm,
# 3 falcon, 4 gpt-2, 5 llama-spm, 6 mpt, 7 phi-3, 8 refact, 9 starcoder).
# Not part of the build; regenerate by hand: fuzz/make_tokenizer_seeds.sh fuzz/corpus/tokenizer
set -e
d=${1:?usage: $0 DIR}
mkdir -p "$d"
seed() { printf "$2" > "$d/$1"; }
# issue 11: a stray lead byte before a space overflowed the SPM symbol array
seed spm_stray_lead_stories '\000\000a\303 b\303 c\303 d\303 e'
seed spm_stray_lead_llama '\005\000a\303 b\303 c\303 d\303 e'
seed spm_stray_lead_phi3 '\007\020\303 \342\226 \360 x\355\240\200 '
# found by fuzzing: refact has no token for byte F1, which BPE drops (as llama.cpp)
seed bpe_dropped_byte_refact '\370\370\0032\023\361\251\251\251)'
i=0
while [ $i -le 9 ]; do
    o=$(printf '%03o' $i)
    seed text_$i "\\$o\\000Hello world! 42 caf\\303\\251 \\342\\202\\254 \\360\\237\\230\\200\\n\\t  end"
    seed special_$i "\\$o\\003<s>Hello</s> <|endoftext|><unk>"
    # ids: 3 bytes each (little-endian, modulo n_vocab+16, minus 8); FF third byte = INT32_MIN/MAX
    seed ids_$i "\\$o\\024\\001\\000\\000\\013\\001\\000\\377\\377\\000\\010\\000\\000\\000\\000\\377\\001\\000\\377\\150\\000\\000"
    seed idsraw_$i "\\$o\\014\\353\\000\\000\\237\\000\\000\\246\\000\\000\\234\\000\\000\\000\\001\\000"
    i=$((i + 1))
done
