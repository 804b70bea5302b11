// The browser viewer: photo (file or webcam) -> websocket server -> VRM shown with
// three.js + @pixiv/three-vrm (orbit, expression sliders, idle blink / look-at /
// sway that makes the spring bones move), downloads of .vrm / .glb.
//
// window.chibiViewer exposes the state for tests and for debugging from the console.
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { VRMLoaderPlugin, VRMUtils, VRMExpressionPresetName } from '@pixiv/three-vrm';
import { ChibiClient, ChibiRequestError } from './client.js';

const $ = (id) => document.getElementById(id);
const PRESETS = Object.values(VRMExpressionPresetName).filter((name) => name !== 'neutral');
const LOOK_PRESETS = new Set(['lookUp', 'lookDown', 'lookLeft', 'lookRight']);
const FORMAT_EXTENSIONS = { vrm1: 'vrm', vrm0: 'vrm', glb: 'glb' };

const state = {
  ready: false,         // the page is wired up
  photo: null,          // {bytes: Uint8Array, type} of the chosen photo, kept in memory only
  params: null,         // AvatarParams JSON of the avatar on stage (every result carries it)
  files: {},            // format -> Uint8Array of the avatar on stage, in each format made
  vrm: null,            // the VRM on stage
  modelFormat: null,    // format of the model on stage
  loading: false,
  errors: [],           // errors shown to the user (also logged with console.warn)
  sliders: {},          // expression name -> slider value in [0, 1]
  renders: 0,           // frames rendered (tests wait on it)
  requestId: null,      // id of the request in flight
  progress: [],         // stages of the last request, in the order they arrived
};
window.chibiViewer = state;

// ---------------------------------------------------------------- the stage
const canvas = $('canvas');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
const scene = new THREE.Scene();
scene.background = new THREE.Color(0xe9e4ee);
const camera = new THREE.PerspectiveCamera(30, 1, 0.05, 50);
camera.position.set(0, 1.0, 2.6);
const controls = new OrbitControls(camera, canvas);
controls.target.set(0, 0.75, 0);
controls.enableDamping = true;
controls.update();
const keyLight = new THREE.DirectionalLight(0xffffff, Math.PI * 0.9);
keyLight.position.set(1, 2, 3);
scene.add(keyLight, new THREE.AmbientLight(0xffffff, 0.5));
const grid = new THREE.GridHelper(4, 16, 0xb8adc4, 0xd4ccdc);
scene.add(grid);
// The look-at target wanders in front of the face during the idle animation.
const lookTarget = new THREE.Object3D();
scene.add(lookTarget);

function resize() {
  const { clientWidth: w, clientHeight: h } = canvas;
  if (canvas.width !== Math.floor(w * renderer.getPixelRatio()) || canvas.height !== Math.floor(h * renderer.getPixelRatio())) {
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  }
}

// Frames the camera on the head and upper body (the face carries the expressions).
function frameAvatar(vrm) {
  const head = vrm.humanoid.getNormalizedBoneNode('head');
  const box = new THREE.Box3().setFromObject(vrm.scene);
  const top = box.max.y;
  const headY = head ? head.getWorldPosition(new THREE.Vector3()).y : top * 0.7;
  const centerY = (headY + top) / 2 - (top - headY) * 0.35;
  const height = (top - headY) * 2.2;
  const distance = height / (2 * Math.tan(THREE.MathUtils.degToRad(camera.fov / 2)));
  controls.target.set(0, centerY, 0);
  camera.position.set(0, centerY + height * 0.05, box.max.z + distance);
  controls.update();
}

// ---------------------------------------------------------------- models
function disposeCurrent() {
  if (!state.vrm) return;
  scene.remove(state.vrm.scene);
  VRMUtils.deepDispose(state.vrm.scene);
  state.vrm = null;
}

async function showModel(bytes, format) {
  const loader = new GLTFLoader();
  loader.register((parser) => new VRMLoaderPlugin(parser));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const gltf = await loader.parseAsync(buffer, '');
  const vrm = gltf.userData.vrm;
  disposeCurrent();
  if (!vrm) {
    // A plain glb: show it as it is, without expressions.
    state.vrm = { scene: gltf.scene, humanoid: null, update() {} };
    scene.add(gltf.scene);
    buildSliders([]);
    $('model-info').textContent = `glb, ${countTriangles(gltf.scene)} triangles`;
    state.modelFormat = format;
    return;
  }
  VRMUtils.rotateVRM0(vrm);  // VRM 0.x faces -Z; show both versions facing the camera
  vrm.scene.traverse((o) => { o.frustumCulled = false; });
  scene.add(vrm.scene);
  if (vrm.lookAt) vrm.lookAt.target = lookTarget;
  state.vrm = vrm;
  state.modelFormat = format;
  vrm.update(0);
  frameAvatar(vrm);
  buildSliders(vrm.expressionManager ? vrm.expressionManager.expressions.map((e) => e.expressionName) : []);
  const version = vrm.meta && vrm.meta.metaVersion === '0' ? 'VRM 0.x' : 'VRM 1.0';
  const springs = vrm.springBoneManager ? vrm.springBoneManager.joints.size : 0;
  $('model-info').textContent = `${version}, ${countTriangles(vrm.scene)} triangles, ${springs} spring joints`;
}

function countTriangles(root) {
  let triangles = 0;
  root.traverse((o) => {
    if (!o.isMesh) return;
    const g = o.geometry;
    triangles += (g.index ? g.index.count : g.attributes.position.count) / 3;
  });
  return triangles;
}

// ---------------------------------------------------------------- expression sliders
function buildSliders(names) {
  const box = $('sliders');
  box.replaceChildren();
  state.sliders = {};
  // Presets first in the spec's order, then any custom expressions.
  const ordered = PRESETS.filter((p) => names.includes(p)).concat(names.filter((n) => !PRESETS.includes(n)));
  if (!ordered.length) {
    box.innerHTML = '<p class="hint">This model has no expressions.</p>';
    return;
  }
  for (const name of ordered) {
    state.sliders[name] = 0;
    const row = document.createElement('label');
    row.className = 'row';
    const title = document.createElement('span');
    title.textContent = name;
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', min: '0', max: '1', step: '0.01', value: '0' });
    input.dataset.expression = name;
    const output = document.createElement('output');
    output.textContent = '0';
    input.addEventListener('input', () => {
      state.sliders[name] = Number(input.value);
      output.textContent = Number(input.value).toFixed(2);
    });
    row.append(title, input, output);
    box.append(row);
  }
}

$('reset-expressions').addEventListener('click', () => {
  for (const input of $('sliders').querySelectorAll('input[type=range]')) {
    input.value = '0';
    input.dispatchEvent(new Event('input'));
  }
});

// ---------------------------------------------------------------- animation
const clock = new THREE.Clock();
let nextBlinkAt = 2;

// Blink weight at time t: a 0.15 s close-open every 2-5 s.
function idleBlink(t) {
  if (t > nextBlinkAt + 0.15) nextBlinkAt = t + 2 + Math.random() * 3;
  const phase = (t - nextBlinkAt) / 0.15;
  return phase >= 0 && phase <= 1 ? Math.sin(Math.PI * phase) : 0;
}

function animate() {
  const delta = Math.min(clock.getDelta(), 0.1);
  const t = clock.elapsedTime;
  const vrm = state.vrm;
  const idle = $('idle').checked;
  if (vrm && vrm.humanoid) {
    const lookSliders = [...LOOK_PRESETS].some((name) => state.sliders[name] > 0);
    if (vrm.lookAt) {
      // A look* slider in use takes the eyes over from the look-at target.
      const follow = !lookSliders && (idle || $('look-camera').checked);
      if (!follow && vrm.lookAt.autoUpdate) vrm.lookAt.reset();
      vrm.lookAt.autoUpdate = follow;
      const head = vrm.humanoid.getNormalizedBoneNode('head');
      if ($('look-camera').checked) {
        lookTarget.position.copy(camera.position);
      } else if (head) {
        const headPos = head.getWorldPosition(new THREE.Vector3());
        lookTarget.position.set(headPos.x + 0.5 * Math.sin(t * 0.7), headPos.y + 0.25 * Math.sin(t * 0.45), headPos.z + 1.5);
      }
    }
    const manager = vrm.expressionManager;
    if (manager) {
      for (const [name, value] of Object.entries(state.sliders)) {
        // While the eyes follow a target, the look-at applier drives the look* expressions.
        if (LOOK_PRESETS.has(name) && vrm.lookAt && vrm.lookAt.autoUpdate) continue;
        manager.setValue(name, name === 'blink' && idle ? Math.max(value, idleBlink(t)) : value);
      }
    }
    // A gentle sway of the upper body: the hair's spring bones follow it.
    const spine = vrm.humanoid.getNormalizedBoneNode('spine');
    const neck = vrm.humanoid.getNormalizedBoneNode('neck');
    if (spine) spine.rotation.z = idle ? 0.08 * Math.sin(t * 1.7) : 0;
    if (neck) {
      neck.rotation.y = idle ? 0.25 * Math.sin(t * 0.9) : 0;
      neck.rotation.z = idle ? 0.06 * Math.sin(t * 1.3 + 1) : 0;
    }
  }
  if (vrm) vrm.update(delta);
  controls.update();
  resize();
  renderer.render(scene, camera);
  state.renders += 1;
  requestAnimationFrame(animate);
}

// Idle off: the avatar comes to rest at once (hair springs fast-forwarded to their rest).
$('idle').addEventListener('change', () => {
  const vrm = state.vrm;
  if ($('idle').checked || !vrm || !vrm.humanoid) return;
  for (const bone of ['spine', 'neck']) {
    const node = vrm.humanoid.getNormalizedBoneNode(bone);
    if (node) node.rotation.set(0, 0, 0);
  }
  if (vrm.lookAt && !$('look-camera').checked) {
    vrm.lookAt.autoUpdate = false;
    vrm.lookAt.reset();
  }
  if (vrm.expressionManager) vrm.expressionManager.setValue('blink', state.sliders.blink || 0);
  for (let step = 0; step < 240; step++) vrm.update(1 / 60);
});

// ---------------------------------------------------------------- photo input
function setPhoto(bytes, type) {
  state.photo = { bytes, type };
  const preview = $('photo-preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(new Blob([bytes], { type }));
  preview.hidden = false;
  $('generate').disabled = false;
  setStatus('Ready: press "Generate avatar".');
}

$('photo-input').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (file) setPhoto(new Uint8Array(await file.arrayBuffer()), file.type || 'image/jpeg');
});

let webcamStream = null;
$('webcam-button').addEventListener('click', async () => {
  // one stream at a time: a second one replaced the first, whose camera then stayed on
  $('webcam-button').disabled = true;
  $('webcam-capture').disabled = true; // until the first frame (a 0x0 canvas gives no photo)
  try {
    webcamStream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 } });
  } catch (err) {
    $('webcam-button').disabled = false;
    showError(`Webcam unavailable: ${err.message}`);
    return;
  }
  $('webcam-video').srcObject = webcamStream;
  $('webcam').hidden = false;
});
$('webcam-video').addEventListener('loadeddata', () => { $('webcam-capture').disabled = false; });

function stopWebcam() {
  if (webcamStream) webcamStream.getTracks().forEach((track) => track.stop());
  webcamStream = null;
  $('webcam-video').srcObject = null;
  $('webcam').hidden = true;
  $('webcam-button').disabled = false;
}
$('webcam-stop').addEventListener('click', stopWebcam);
$('webcam-capture').addEventListener('click', () => {
  const video = $('webcam-video');
  const frame = document.createElement('canvas');
  frame.width = video.videoWidth;
  frame.height = video.videoHeight;
  frame.getContext('2d').drawImage(video, 0, 0);
  frame.toBlob(async (blob) => {
    if (!blob) {
      showError('The camera gave no picture yet; try again.');
      return;
    }
    setPhoto(new Uint8Array(await blob.arrayBuffer()), 'image/jpeg');
    stopWebcam();
  }, 'image/jpeg', 0.92);
});

$('model-input').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const format = file.name.toLowerCase().endsWith('.glb') ? 'glb' : 'vrm1';
  try {
    await showModel(new Uint8Array(await file.arrayBuffer()), format);
    state.files = {}; // the user's own file: nothing of ours to download for it
    state.params = null;
    enableDownloads(false);
    setStatus(`Showing ${file.name}.`);
  } catch (err) {
    showError(`Could not load ${file.name}: ${err.message}`);
  }
});

// ---------------------------------------------------------------- status
function setStatus(text, fraction = null) {
  $('status').textContent = text;
  if (fraction !== null) $('progress').value = fraction;
}

function showError(text) {
  state.errors.push(text);
  console.warn(`viewer: ${text}`);
  $('error').textContent = text;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

// ---------------------------------------------------------------- talking to the server
const client = new ChibiClient();

function downloadBytes(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'model/gltf-binary' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function enableDownloads(enabled) {
  $('download-vrm').disabled = !enabled;
  $('download-glb').disabled = !enabled;
}

// Runs one request at a time; resolves to {bytes, params} or null when it failed / was
// cancelled. It changes no state of the avatar on stage: its callers do, on success.
async function runRequest(kind, format, params) {
  if (state.loading) return null;
  clearError();
  state.loading = true;
  $('generate').disabled = true;
  $('cancel').disabled = false;
  enableDownloads(false); // a download now would be of the avatar being replaced

  setStatus('Connecting…', 0);
  try {
    await client.connect($('token').value.trim());
    const options = { format, quality: $('quality').value };
    const request = kind === 'photo'
      ? client.fromPhoto(state.photo.bytes, options)
      : client.fromParams(params, options);
    state.requestId = request.id;
    state.progress = [];
    const result = await request.run((event) => {
      state.progress.push(event.stage);
      setStatus(event.message || event.stage, event.fraction);
    });
    setStatus(`Done: ${(result.bytes.byteLength / 1024).toFixed(0)} KiB ${format}.`, 1);
    return { bytes: result.bytes, params: result.params || params };
  } catch (err) {
    const code = err instanceof ChibiRequestError ? ` [${err.code}]` : '';
    showError(`${err.message}${code}`);
    setStatus('Failed.', 0);
    return null;
  } finally {
    state.loading = false;
    state.requestId = null;
    $('generate').disabled = !state.photo;
    $('cancel').disabled = true;
    enableDownloads(Object.keys(state.files).length > 0);
  }
}

async function generate(kind, params = null) {
  const format = $('format').value;
  const result = await runRequest(kind, format, params);
  if (!result) return; // the avatar on stage and its files stay as they were
  try {
    await showModel(result.bytes, format);
  } catch (err) {
    showError(`The avatar did not load: ${err.message}`);
    return;
  }
  state.files = { [format]: result.bytes };
  state.params = result.params;
  enableDownloads(true);
}

$('generate').addEventListener('click', () => generate('photo'));
// Enter in the token field must not reload the page.
$('options-form').addEventListener('submit', (event) => event.preventDefault());
$('cancel').addEventListener('click', () => client.cancel(state.requestId));

// A format not on stage is made on demand from the parameters of the avatar on stage
// (every result carries them), and kept with that avatar's files.
async function fileOnStage(format) {
  const files = state.files;
  if (!files[format] && state.params) {
    const result = await runRequest('params', format, state.params);
    if (result) files[format] = result.bytes;
  }
  return files[format] || null;
}

$('download-vrm').addEventListener('click', async () => {
  const format = state.files.vrm0 ? 'vrm0' : 'vrm1';
  const bytes = await fileOnStage(format);
  if (bytes) downloadBytes(bytes, `chibi-avatar-${format}.${FORMAT_EXTENSIONS[format]}`);
});

$('download-glb').addEventListener('click', async () => {
  const bytes = await fileOnStage('glb');
  if (bytes) downloadBytes(bytes, 'chibi-avatar.glb');
});

// Test / console hook: generate from an AvatarParams object instead of a photo.
state.generateFromParams = async (params, format = 'vrm1') => {
  $('format').value = format;
  await generate('params', params);
};
state.showModel = showModel;

animate();
state.ready = true;
