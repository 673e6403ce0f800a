// openai_e2e.mjs - the official OpenAI Node client against inferno-gateway
// (run by tests/test_gateway_e2e.c; needs the pinned `openai` package in
// NODE_PATH's folder). Prints one JSON object: what each call returned, so
// the C test can compare it with the worker's own answers from Redis.
//   node openai_e2e.mjs BASE_URL API_KEY LIMITED_BASE_URL MODEL CHAT_MODEL
import OpenAI from 'openai';

const [base, key, limitedBase, model, chatModel] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 60000 });
const out = {};
const err = (e) => ({ status: e.status ?? null, param: e.param ?? null, code: e.code ?? null,
                      type: e.type ?? null, message: String(e.message).slice(0, 300) });

// 1. streaming completion (greedy)
{
  const s = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 24, temperature: 0,
                                              stream: true, stream_options: { include_usage: true } });
  let text = '', chunks = 0, finish = null, usage = null, id = null;
  for await (const c of s) {
    id = c.id;
    if (c.choices.length) { text += c.choices[0].text; chunks++; finish = c.choices[0].finish_reason ?? finish; }
    if (c.usage) usage = c.usage;
  }
  out.stream_completion = { id, text, chunks, finish, usage };
}
// 2. non-streaming completion (greedy)
{
  const r = await client.completions.create({ model, prompt: 'The little dog', max_tokens: 16, temperature: 0 });
  out.completion = { id: r.id, object: r.object, text: r.choices[0].text, finish: r.choices[0].finish_reason,
                     usage: r.usage };
}
// 3. n = 2 (sampled, seeded)
{
  const r = await client.completions.create({ model, prompt: 'Lily wanted to', max_tokens: 12, temperature: 1,
                                              seed: 7, n: 2 });
  out.n2 = { n: r.choices.length, index: r.choices.map((c) => c.index), texts: r.choices.map((c) => c.text),
             usage: r.usage };
}
// 4. a 400 naming the parameter
try {
  await client.completions.create({ model, prompt: 'x', temperature: 5 });
  out.bad_request = { status: 200 };
} catch (e) { out.bad_request = err(e); }
// 5. a 401
try {
  const bad = new OpenAI({ baseURL: base, apiKey: 'sk-wrong', maxRetries: 0 });
  await bad.completions.create({ model, prompt: 'x', max_tokens: 2 });
  out.unauthorized = { status: 200 };
} catch (e) { out.unauthorized = err(e); }
// 6. a 429 (the limited gateway allows one request per key and then refuses)
{
  const lim = new OpenAI({ baseURL: limitedBase, apiKey: key, maxRetries: 0 });
  const res = [];
  for (let i = 0; i < 3; i++) {
    try { await lim.completions.create({ model, prompt: 'x', max_tokens: 2, temperature: 0 }); res.push(200); }
    catch (e) { res.push(e.status ?? -1); }
  }
  out.rate_limited = res;
}
// 7. 404 model_not_found
try {
  await client.completions.create({ model: 'no-such-model', prompt: 'x' });
  out.not_found = { status: 200 };
} catch (e) { out.not_found = err(e); }
// 8. a client that aborts mid-stream
{
  const ac = new AbortController();
  let id = null, got = 0;
  try {
    const s = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 2000,
                                                temperature: 0, ignore_eos: true, stream: true },
                                              { signal: ac.signal });
    for await (const c of s) { id = c.id; got++; if (got >= 2) ac.abort(); }
  } catch (e) { /* the abort */ }
  out.aborted = { id, got };
}
// 9. models
out.models = (await client.models.list()).data.map((m) => m.id);
// 10. chat: a model without a template is a 400 that says so
try {
  await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
  out.chat_no_template = { status: 200 };
} catch (e) { out.chat_no_template = err(e); }
// 11. streaming chat on a model with a template (needs the worker's chat support)
if (chatModel) {
  try {
    const s = await client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'Hello' }],
                                                     max_tokens: 12, temperature: 0, stream: true,
                                                     stream_options: { include_usage: true } });
    let text = '', role = null, finish = null, usage = null, first = null;
    for await (const c of s) {
      if (c.choices.length) {
        const d = c.choices[0].delta;
        if (first === null) first = d;
        if (d.role) role = d.role;
        if (d.content) text += d.content;
        finish = c.choices[0].finish_reason ?? finish;
      }
      if (c.usage) usage = c.usage;
    }
    out.chat_stream = { role, first_role: first?.role ?? null, text, finish, usage };
  } catch (e) { out.chat_stream = err(e); }
}
console.log(JSON.stringify(out));
