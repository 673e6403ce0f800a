// load.mjs - N concurrent streaming completions against inferno-gateway with
// Node's own http client (no packages): every request must end with
// `data: [DONE]` and a 200. Prints one JSON object: counts, TTFB (request
// sent -> first content chunk) percentiles, and the gateway's RSS while
// all N were open (read from /proc by PID).
//   node load.mjs HOST PORT N MAX_TOKENS MODEL GATEWAY_PID [API_KEY]
import http from 'node:http';
import fs from 'node:fs';

const [host, port, nS, mtS, model, pid, key] = process.argv.slice(2);
const N = +nS, MT = +mtS;
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const rss = () => { try { return +/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1] * 1024; }
                    catch { return -1; } };
const rssIdle = rss();
let open = 0, peakOpen = 0, rssPeak = 0, ok = 0, bad = 0;
const ttfb = [], errors = [];
const one = (i) => new Promise((resolve) => {
  const body = JSON.stringify({ model, prompt: `Once upon a time ${i % 50}`, max_tokens: MT, temperature: 0,
                                ignore_eos: true, stream: true });
  const t0 = performance.now();
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
  if (key) headers.Authorization = `Bearer ${key}`;
  const req = http.request({ host, port, path: '/v1/completions', method: 'POST', agent, headers }, (res) => {
    let buf = '', first = null;
    res.setEncoding('utf8');
    res.on('data', (d) => {
      if (first === null && d.includes('"text":"') ) { first = performance.now() - t0; }
      buf += d;
    });
    res.on('end', () => {
      open--;
      if (res.statusCode === 200 && buf.endsWith('data: [DONE]\n\n')) { ok++; if (first !== null) ttfb.push(first); }
      else { bad++; if (errors.length < 5) errors.push(`${res.statusCode}: ${buf.slice(-200)}`); }
      resolve();
    });
  });
  req.on('error', (e) => { open--; bad++; if (errors.length < 5) errors.push(String(e)); resolve(); });
  open++;
  if (open > peakOpen) peakOpen = open;
  req.end(body);
});
const sampler = setInterval(() => { if (open >= peakOpen * 0.95) rssPeak = Math.max(rssPeak, rss()); }, 20);
const t0 = performance.now();
await Promise.all(Array.from({ length: N }, (_, i) => one(i)));
clearInterval(sampler);
ttfb.sort((a, b) => a - b);
const pct = (p) => ttfb.length ? ttfb[Math.min(ttfb.length - 1, Math.floor(p / 100 * ttfb.length))] : null;
console.log(JSON.stringify({ n: N, ok, bad, peak_open: peakOpen, seconds: (performance.now() - t0) / 1000,
                             ttfb_ms: { p50: pct(50), p90: pct(90), p99: pct(99) },
                             rss_idle: rssIdle, rss_peak: rssPeak, errors }));
