// Drives the viewer page (server/static/) served by a running `chibi serve`, the way a
// user would: choose a photo (or, via the page's hook, send params), wait for the
// avatar, inspect it, move every expression slider and measure the pixels it changes,
// download the .vrm and the .glb. Prints one JSON report on stdout.
//
// Usage: node tests/browser/viewer_check.mjs < job.json
//   job: {"url": "http://127.0.0.1:PORT/", "label": "photo",
//         one of "photo_b64": JPEG bytes | "params": {...} | "model_b64": a .vrm to open,
//         "format": "vrm1", "screenshot_dir": "/abs/dir", "timeout_ms": 120000}
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, watchPage } from './run.mjs';

const REQUIRED_BONES = [
  'hips', 'spine', 'chest', 'neck', 'head',
  'leftUpperArm', 'leftLowerArm', 'leftHand', 'rightUpperArm', 'rightLowerArm', 'rightHand',
  'leftUpperLeg', 'leftLowerLeg', 'leftFoot', 'rightUpperLeg', 'rightLowerLeg', 'rightFoot',
];

// Resolves after the page has rendered `count` more frames.
async function frames(page, count) {
  const start = await page.evaluate(() => window.chibiViewer.renders);
  await page.waitForFunction((target) => window.chibiViewer.renders >= target, start + count, { timeout: 30000 });
}

// The canvas's pixels, kept in the page (window.__pixels[key]) for comparisons.
async function capture(page, key) {
  await page.evaluate((key) => {
    const source = document.getElementById('canvas');
    const copy = document.createElement('canvas');
    copy.width = source.width;
    copy.height = source.height;
    const ctx = copy.getContext('2d');
    ctx.drawImage(source, 0, 0);
    window.__pixels = window.__pixels || {};
    window.__pixels[key] = ctx.getImageData(0, 0, copy.width, copy.height).data;
  }, key);
}

// Number of pixels whose colour differs by more than 8 (of 255) in some channel.
async function changedPixels(page, a, b) {
  return page.evaluate(([a, b]) => {
    const x = window.__pixels[a];
    const y = window.__pixels[b];
    let changed = 0;
    for (let i = 0; i < x.length; i += 4) {
      if (Math.abs(x[i] - y[i]) > 8 || Math.abs(x[i + 1] - y[i + 1]) > 8 || Math.abs(x[i + 2] - y[i + 2]) > 8) changed++;
    }
    return changed;
  }, [a, b]);
}

// Waits until two captures a few frames apart are identical (springs settled).
async function settle(page, timeoutMs = 20000) {
  const t0 = Date.now();
  await capture(page, 'settle-a');
  while (Date.now() - t0 < timeoutMs) {
    await frames(page, 3);
    await capture(page, 'settle-b');
    if ((await changedPixels(page, 'settle-a', 'settle-b')) === 0) return Date.now() - t0;
    await page.evaluate(() => { window.__pixels['settle-a'] = window.__pixels['settle-b']; });
  }
  return -1;
}

async function setSlider(page, name, value) {
  await page.evaluate(([name, value]) => {
    const input = document.querySelector(`#sliders input[data-expression="${name}"]`);
    input.value = String(value);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }, [name, value]);
}

async function download(page, button) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout: 120000 }), page.click(button)]);
  const bytes = readFileSync(await file.path());
  return { name: file.suggestedFilename(), size: bytes.length, magic: bytes.subarray(0, 4).toString('latin1'), json_head: bytes.subarray(20, 20 + bytes.readUInt32LE(12)).toString('utf8') };
}

async function main() {
  const job = JSON.parse(readFileSync(0, 'utf8'));
  const timeout = job.timeout_ms || 120000;
  const out = { timings_ms: {} };
  const t0 = Date.now();
  const browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 800, height: 560 }, acceptDownloads: true });
  const page = await context.newPage();
  const log = watchPage(page);
  try {
    await page.goto(job.url, { waitUntil: 'load', timeout });
    // The page and its modules come from the server: 30 s is plenty, and a 404 is reported below.
    await page.waitForFunction(() => window.chibiViewer && window.chibiViewer.ready, null, { timeout: 30000 });
    out.timings_ms.page = Date.now() - t0;
    await page.selectOption('#format', job.format || 'vrm1');
    const t1 = Date.now();
    if (job.photo_b64) {
      await page.setInputFiles('#photo-input', { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: Buffer.from(job.photo_b64, 'base64') });
      await page.waitForFunction(() => !document.getElementById('generate').disabled, null, { timeout });
      await page.click('#generate');
    } else if (job.model_b64) {
      // "Open a .vrm/.glb file": no server request, the file goes straight to the stage.
      await page.setInputFiles('#model-input', { name: 'model.vrm', mimeType: 'model/gltf-binary', buffer: Buffer.from(job.model_b64, 'base64') });
      await page.waitForFunction(() => window.chibiViewer.vrm || window.chibiViewer.errors.length, null, { timeout });
    } else {
      await page.evaluate(([params, format]) => { window.chibiViewer.generateFromParams(params, format); }, [job.params, job.format || 'vrm1']);
    }
    await page.waitForFunction(() => !window.chibiViewer.loading && (window.chibiViewer.vrm || window.chibiViewer.errors.length), null, { timeout });
    out.timings_ms.generate = Date.now() - t1;
    out.viewer_errors = await page.evaluate(() => window.chibiViewer.errors);
    out.progress = await page.evaluate(() => window.chibiViewer.progress);
    out.status = await page.textContent('#status');
    if (!out.viewer_errors.length) {
      Object.assign(out, await page.evaluate((required) => {
        const v = window.chibiViewer;
        const vrm = v.vrm;
        return {
          meta_version: vrm.meta ? vrm.meta.metaVersion : null,
          bones: Object.fromEntries(required.map((b) => [b, !!(vrm.humanoid && vrm.humanoid.getRawBoneNode(b))])),
          expression_names: vrm.expressionManager ? vrm.expressionManager.expressions.map((e) => e.expressionName) : [],
          sliders: [...document.querySelectorAll('#sliders input[type=range]')].map((i) => i.dataset.expression),
          spring_joints: vrm.springBoneManager ? vrm.springBoneManager.joints.size : 0,
          model_info: document.getElementById('model-info').textContent,
          model_bytes: v.files[v.modelFormat] ? v.files[v.modelFormat].byteLength : 0,
        };
      }, REQUIRED_BONES));

      // Idle animation on: the hair's spring joints move by themselves.
      await frames(page, 5);
      const rest = await page.evaluate(() => [...window.chibiViewer.vrm.springBoneManager.joints].map((j) => j.bone.quaternion.toArray()));
      await page.waitForTimeout(1500);
      out.idle_spring_swing_rad = await page.evaluate((rest) => {
        const joints = [...window.chibiViewer.vrm.springBoneManager.joints];
        return Math.max(0, ...joints.map((j, i) => {
          const [x, y, z, w] = rest[i];
          const dot = Math.abs(x * j.bone.quaternion.x + y * j.bone.quaternion.y + z * j.bone.quaternion.z + w * j.bone.quaternion.w);
          return 2 * Math.acos(Math.min(1, dot));
        }));
      }, rest);
      mkdirSync(job.screenshot_dir, { recursive: true });
      await page.screenshot({ path: path.join(job.screenshot_dir, `viewer_${job.label}.png`) });

      // Idle off: a still picture, then each slider alone must change the pixels.
      await page.uncheck('#idle');
      out.settle_ms = await settle(page);
      const t3 = Date.now();
      const r3 = await page.evaluate(() => window.chibiViewer.renders);
      // The slider loop runs inside the page: one round trip instead of dozens.
      Object.assign(out, await page.evaluate(async (names) => {
        const v = window.chibiViewer;
        const source = document.getElementById('canvas');
        const copy = document.createElement('canvas');
        const ctx = copy.getContext('2d', { willReadFrequently: true });
        const nextFrames = (count) => new Promise((resolve) => {
          const target = v.renders + count;
          const poll = () => (v.renders >= target ? resolve() : requestAnimationFrame(poll));
          poll();
        });
        const grab = () => {
          copy.width = source.width;
          copy.height = source.height;
          ctx.drawImage(source, 0, 0);
          return ctx.getImageData(0, 0, copy.width, copy.height).data;
        };
        const diff = (x, y) => {
          let changed = 0;
          for (let i = 0; i < x.length; i += 4) {
            if (Math.abs(x[i] - y[i]) > 8 || Math.abs(x[i + 1] - y[i + 1]) > 8 || Math.abs(x[i + 2] - y[i + 2]) > 8) changed++;
          }
          return changed;
        };
        const slide = (name, value) => {
          const input = document.querySelector(`#sliders input[data-expression="${name}"]`);
          input.value = String(value);
          input.dispatchEvent(new Event('input', { bubbles: true }));
        };
        await nextFrames(2);
        const base = grab();
        const expression_pixels = {};
        for (const name of names) {
          slide(name, 1);
          // Two frames: the first may have started before the change; the second shows it.
          await nextFrames(2);
          expression_pixels[name] = diff(base, grab());
          slide(name, 0);
        }
        await nextFrames(2);
        return { expression_pixels, pixels_after_reset: diff(base, grab()) };
      }, out.sliders));
      out.timings_ms.sliders = Date.now() - t3;
      out.fps = ((await page.evaluate(() => window.chibiViewer.renders)) - r3) / (out.timings_ms.sliders / 1000);
      await setSlider(page, 'happy', 1);
      await frames(page, 3);
      await page.screenshot({ path: path.join(job.screenshot_dir, `viewer_${job.label}_happy.png`) });
      await setSlider(page, 'happy', 0);

      const t2 = Date.now();
      if (!job.model_b64) {
        out.download_vrm = await download(page, '#download-vrm');
        out.download_glb = await download(page, '#download-glb');
        out.timings_ms.downloads = Date.now() - t2;
      }
    }
  } catch (err) {
    out.driver_error = String(err.stack || err);
    try { await page.screenshot({ path: path.join(job.screenshot_dir, `viewer_${job.label}_failure.png`) }); } catch { /* ignore */ }
  } finally {
    await browser.close();
  }
  Object.assign(out, log);
  out.timings_ms.total = Date.now() - t0;
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { process.stderr.write(`viewer_check.mjs: ${err.stack || err}\n`); process.exit(1); });
