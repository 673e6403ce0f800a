/* backend.c - backend-independent parts of the backend interface (see backend.h). */
#include "backend.h"

backend_config backend_config_default(void) {
    backend_config c = {0};
    c.n_threads = 0;
    c.kv_cache_bytes = (size_t)256 << 20;
    c.kv_block_size = 16;
    c.kv_type = BACKEND_KV_F16;
    c.max_batch_tokens = 512;
    c.gpu_memory_fraction = 0.9;
    return c;
}

int backend_validate_batch(const backend *b, const backend_batch *batch, inf_error *err) {
    if (batch->n_tokens <= 0 || batch->n_tokens > b->max_batch_tokens)
        return inf_error_set(err, INF_EINVAL, "batch has %d tokens; allowed 1..%d",
                             batch->n_tokens, b->max_batch_tokens);
    if (batch->n_seqs <= 0)
        return inf_error_set(err, INF_EINVAL, "batch has no sequences");
    for (int s = 0; s < batch->n_seqs; s++) {
        const backend_seq *seq = &batch->seqs[s];
        for (int i = 0; i < seq->n_blocks; i++)
            if (seq->blocks[i] < 0 || seq->blocks[i] >= b->n_kv_blocks)
                return inf_error_set(err, INF_EINVAL, "sequence %d block %d is %d; allowed 0..%d",
                                     s, i, seq->blocks[i], b->n_kv_blocks - 1);
    }
    for (int t = 0; t < batch->n_tokens; t++) {
        int32_t tok = batch->tokens[t], pos = batch->positions[t], si = batch->seq_index[t];
        if (tok < 0 || (uint32_t)tok >= b->desc.n_vocab)
            return inf_error_set(err, INF_EINVAL, "token %d: id %d outside the vocabulary (0..%u)",
                                 t, tok, b->desc.n_vocab - 1);
        if (si < 0 || si >= batch->n_seqs)
            return inf_error_set(err, INF_EINVAL, "token %d: sequence index %d outside 0..%d", t,
                                 si, batch->n_seqs - 1);
        if (pos < 0 || pos / b->kv_block_size >= batch->seqs[si].n_blocks)
            return inf_error_set(err, INF_EINVAL,
                                 "token %d: position %d is not covered by its %d KV blocks", t,
                                 pos, batch->seqs[si].n_blocks);
    }
    return 0;
}

int backend_forward(backend *b, const backend_batch *batch, float *logits, inf_error *err) {
    if (!logits && !b->device_sampling)
        return inf_error_set(err, INF_EINVAL,
                             "the %s backend needs a logits buffer (it cannot keep logits on a device)",
                             b->vt->name);
    int rc = backend_validate_batch(b, batch, err);
    if (rc) return rc;
    return b->vt->forward(b, batch, logits, err);
}

void backend_free(backend *b) {
    if (b) b->vt->free(b);
}
