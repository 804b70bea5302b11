// The viewer page's controls through a replaced avatar, a failed generation and the webcam,
// against a running `chibi serve`. Prints one JSON report on stdout.
//
// Usage: node tests/browser/viewer_states.mjs < job.json
//   job: {"url": "http://127.0.0.1:PORT/", "a": {params}, "b": {params}, "timeout_ms": 120000}
// Chromium's fake camera stands in for a webcam (a test pattern, no permission prompt).
import { readFileSync } from 'node:fs';
import { launchBrowser, watchPage } from './run.mjs';

const FAKE_CAMERA = ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];

async function idle(page, timeout) {
  await page.waitForFunction(() => !window.chibiViewer.loading, null, { timeout });
}

async function disabled(page, ids) {
  return page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.getElementById(id).disabled])), ids);
}

async function download(page, button, timeout) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout }), page.click(button)]);
  return { name: file.suggestedFilename(), size: readFileSync(await file.path()).length };
}

async function main() {
  const job = JSON.parse(readFileSync(0, 'utf8'));
  const timeout = job.timeout_ms || 120000;
  const out = {};
  const browser = await launchBrowser(FAKE_CAMERA);
  const context = await browser.newContext({ viewport: { width: 800, height: 560 }, acceptDownloads: true });
  // every camera stream the page opens, to see which are still live at the end
  await context.addInitScript(() => {
    window.__streams = [];
    const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await open(constraints);
      window.__streams.push(stream);
      return stream;
    };
  });
  const page = await context.newPage();
  const log = watchPage(page);
  const requests = []; // the request messages the page sent, in order
  page.on('websocket', (socket) => socket.on('framesent', (frame) => {
    if (typeof frame.payload === 'string' && frame.payload.includes('"request"')) requests.push(JSON.parse(frame.payload));
  }));
  try {
    await page.goto(job.url, { waitUntil: 'load', timeout });
    await page.waitForFunction(() => window.chibiViewer && window.chibiViewer.ready, null, { timeout: 30000 });

    // 1. Avatar A on stage, then B being made: no download may start meanwhile.
    await page.evaluate((a) => window.chibiViewer.generateFromParams(a, 'vrm1'), job.a);
    await page.evaluate((b) => { window.__b = window.chibiViewer.generateFromParams(b, 'vrm1'); }, job.b);
    await page.waitForFunction(() => window.chibiViewer.loading, null, { timeout });
    out.while_generating = await disabled(page, ['download-vrm', 'download-glb']);
    await page.evaluate(() => document.getElementById('download-glb').click()); // a click there does nothing
    await page.evaluate(() => window.__b);
    await idle(page, timeout);
    out.params_after_b = await page.evaluate(() => window.chibiViewer.params.hair_color);
    out.vrm_b = await download(page, '#download-vrm', timeout);
    out.glb_b = await download(page, '#download-glb', timeout);
    out.requests = requests.map((r) => ({ source: r.source, format: r.options.format, hair: r.params ? r.params.hair_color : null }));

    // 2. A generation that fails leaves B on stage and downloadable.
    await page.setInputFiles('#photo-input', { name: 'x.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not a photo') });
    await page.click('#generate');
    await page.waitForFunction(() => window.chibiViewer.errors.length > 0, null, { timeout });
    await idle(page, timeout);
    out.errors_shown = await page.evaluate(() => window.chibiViewer.errors);
    out.after_failure = await disabled(page, ['download-vrm', 'download-glb']);
    out.vrm_after_failure = await download(page, '#download-vrm', timeout);

    // 3. The webcam: one stream, no photo before the first frame, every stream stopped.
    await page.click('#webcam-button');
    await page.waitForFunction(() => !document.getElementById('webcam').hidden, null, { timeout: 30000 });
    out.webcam_open = await disabled(page, ['webcam-button']);
    await page.waitForFunction(() => !document.getElementById('webcam-capture').disabled, null, { timeout: 30000 });
    await page.click('#webcam-capture');
    await page.waitForFunction(() => document.getElementById('webcam').hidden, null, { timeout: 30000 });
    out.photo_taken = await page.evaluate(() => !!window.chibiViewer.photo && window.chibiViewer.photo.bytes.length > 1000);
    out.streams = await page.evaluate(() => window.__streams.map((s) => s.getTracks().map((t) => t.readyState)));
  } catch (err) {
    out.driver_error = String(err && err.stack ? err.stack : err);
  }
  out.page_errors = log.errors;
  await browser.close();
  process.stdout.write(JSON.stringify(out));
}

main();
