// Drives headless Chromium over a page served on a local HTTP server and inspects
// many model files in one browser session (Chromium start-up is the slow part).
//
// Usage: node tests/browser/run.mjs < job.json > result.json
//   job: {"page": "http://127.0.0.1:PORT/tests/browser/load_vrm.html",
//         "items": [{"name": "a.vrm", "url": "/files/a.vrm", "kind": "vrm", "screenshot": true}],
//         "timeout_ms": 60000}
//   result: {"browser": "...", "webgl": "...", "reports": {"a.vrm": {...}}}
// Each item gets a fresh page, so the page errors and console messages in its
// report are its own. Progress goes to stderr.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'package.json'));
const { chromium } = require('playwright-core');

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // WebGL on the CPU: ANGLE over SwiftShader (without the flag Chromium only warns and falls back).
  '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
];

export async function launchBrowser(extraArgs = []) {
  // playwright-core gives every launch a fresh temporary --user-data-dir.
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

// Collects page errors, console messages and failed requests of one page.
export function watchPage(page) {
  const log = { errors: [], warnings: [], console: [] };
  page.on('pageerror', (err) => log.errors.push(`pageerror: ${err.stack || err.message}`));
  page.on('console', (msg) => {
    const text = `${msg.type()}: ${msg.text()}`;
    log.console.push(text);
    if (msg.type() === 'error') log.errors.push(`console.${text}`);
    // Chromium's own GL driver notes ("GPU stall due to ReadPixels") say nothing about the page.
    else if (msg.type() === 'warning' && !msg.text().includes('GL Driver Message')) log.warnings.push(text);
  });
  page.on('requestfailed', (req) => log.errors.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
  page.on('response', (res) => {
    if (res.status() >= 400) log.errors.push(`http ${res.status()}: ${res.url()}`);
  });
  return log;
}

async function main() {
  const job = JSON.parse(readFileSync(0, 'utf8'));
  const t0 = Date.now();
  const browser = await launchBrowser();
  const result = { browser: browser.version(), reports: {}, timings_ms: { launch: Date.now() - t0 } };
  const context = await browser.newContext({ viewport: { width: 640, height: 640 } });
  try {
    for (const item of job.items) {
      const t1 = Date.now();
      const page = await context.newPage();
      const log = watchPage(page);
      let report;
      try {
        await page.goto(job.page, { waitUntil: 'load', timeout: job.timeout_ms || 60000 });
        await page.waitForFunction(() => window.harnessReady === true, null, { timeout: job.timeout_ms || 60000 });
        if (!result.webgl) {
          result.webgl = await page.evaluate(() => {
            const gl = document.createElement('canvas').getContext('webgl2');
            const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
            return gl ? gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) : null;
          });
        }
        report = await page.evaluate((it) => window.inspectModel(it), item);
      } catch (err) {
        report = { kind: item.kind, loaded: false, load_error: `driver: ${err.message}` };
      }
      await page.close();
      Object.assign(report, log, { elapsed_ms: Date.now() - t1 });
      result.reports[item.name] = report;
      process.stderr.write(`run.mjs: ${item.name}: loaded=${report.loaded} errors=${report.errors.length} ${report.elapsed_ms} ms\n`);
    }
  } finally {
    await browser.close();
  }
  result.timings_ms.total = Date.now() - t0;
  process.stdout.write(JSON.stringify(result));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => { process.stderr.write(`run.mjs: ${err.stack || err}\n`); process.exit(1); });
}
