// The in-page half of the three-vrm test harness (see tests/threevrm.py).
//
// window.inspectModel({url, kind, screenshot, width, height}) loads one file with
// three's GLTFLoader (kind "gltf") or GLTFLoader + three-vrm's VRMLoaderPlugin
// (kind "vrm") and resolves to a plain JSON report. It never throws: load errors
// land in report.load_error; console errors are collected by the driver (run.mjs).
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import {
  VRMLoaderPlugin, VRMUtils, VRMHumanBoneList, VRMExpressionPresetName,
  VRMExpressionMorphTargetBind, VRMExpressionMaterialColorBind, VRMExpressionTextureTransformBind,
} from '@pixiv/three-vrm';

const PRESET_NAMES = new Set(Object.values(VRMExpressionPresetName));
// An influence must move by more than this to count as "changed".
const INFLUENCE_EPS = 1e-4;

function bindKind(bind) {
  if (bind instanceof VRMExpressionMorphTargetBind) return 'morphTarget';
  if (bind instanceof VRMExpressionMaterialColorBind) return 'materialColor';
  if (bind instanceof VRMExpressionTextureTransformBind) return 'textureTransform';
  return bind.constructor.name;
}

function morphMeshes(root) {
  const meshes = [];
  root.traverse((o) => { if (o.isMesh && o.morphTargetInfluences) meshes.push(o); });
  return meshes;
}

function snapshotInfluences(meshes) {
  return meshes.map((m) => Array.from(m.morphTargetInfluences));
}

// Names (target names, or indices when unnamed) whose influence moved since `before`.
function changedTargets(meshes, before) {
  const changed = new Set();
  meshes.forEach((mesh, i) => {
    const names = [];
    for (const [name, index] of Object.entries(mesh.morphTargetDictionary || {})) names[index] = name;
    mesh.morphTargetInfluences.forEach((value, k) => {
      if (Math.abs(value - before[i][k]) > INFLUENCE_EPS) changed.add(names[k] ?? `#${k}`);
    });
  });
  return [...changed].sort();
}

function errorText(err) {
  return err && err.stack ? String(err.stack) : String(err);
}

function boundingBox(root) {
  root.updateMatrixWorld(true);
  const box = new THREE.Box3().setFromObject(root);
  return { min: box.min.toArray(), max: box.max.toArray() };
}

// Renders `root` from the front (+Z looking at -Z) and returns a base64 PNG.
function renderPng(root, width, height) {
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setSize(width, height);
  renderer.setPixelRatio(1);
  document.body.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x808890);
  const light = new THREE.DirectionalLight(0xffffff, Math.PI);
  light.position.set(1, 1, 2);
  scene.add(light, new THREE.AmbientLight(0xffffff, 0.6));
  scene.add(root);
  const box = new THREE.Box3().setFromObject(root);
  const center = box.getCenter(new THREE.Vector3());
  const size = box.getSize(new THREE.Vector3());
  const camera = new THREE.PerspectiveCamera(30, width / height, 0.01, 100);
  const fit = Math.max(size.y, size.x * height / width) * 0.5 / Math.tan(THREE.MathUtils.degToRad(15));
  camera.position.set(center.x, center.y, box.max.z + fit * 1.1);
  camera.lookAt(center);
  renderer.render(scene, camera);
  const png = renderer.domElement.toDataURL('image/png').split(',')[1];
  scene.remove(root);
  renderer.dispose();
  renderer.domElement.remove();
  return png;
}

function inspectGltf(gltf, report) {
  report.meshes = [];
  gltf.scene.traverse((o) => {
    if (!o.isMesh) return;
    const dict = o.morphTargetDictionary || {};
    report.meshes.push({
      name: o.name,
      skinned: !!o.isSkinnedMesh,
      bones: o.isSkinnedMesh ? o.skeleton.bones.length : 0,
      vertices: o.geometry.attributes.position.count,
      material: [].concat(o.material).map((m) => (m.isMToonMaterial ? 'MToonMaterial' : m.type)),
      morph_targets: Object.keys(dict).sort((a, b) => dict[a] - dict[b]),
    });
  });
  report.parser_extensions = Object.keys(gltf.parser.json.extensions || {});
  report.bounding_box = boundingBox(gltf.scene);
}

function inspectVrm(vrm, report) {
  report.meta_version = vrm.meta ? vrm.meta.metaVersion : null;
  report.meta_name = vrm.meta ? (vrm.meta.name ?? vrm.meta.title ?? null) : null;
  // VRM 0.x faces -Z; three-vrm's own helper turns it to +Z like VRM 1.0.
  if (report.meta_version === '0') VRMUtils.rotateVRM0(vrm);
  vrm.scene.updateMatrixWorld(true);

  report.humanoid = {};
  for (const bone of VRMHumanBoneList) {
    const raw = vrm.humanoid.getRawBoneNode(bone);
    const normalized = vrm.humanoid.getNormalizedBoneNode(bone);
    if (raw || normalized) {
      report.humanoid[bone] = {
        raw: raw ? raw.name : null,
        normalized: !!normalized,
        world_position: raw ? raw.getWorldPosition(new THREE.Vector3()).toArray() : null,
      };
    }
  }
  report.bounding_box = boundingBox(vrm.scene);
  report.look_at_type = vrm.lookAt && vrm.lookAt.applier ? vrm.lookAt.applier.constructor.type : null;
  report.materials = [];
  vrm.scene.traverse((o) => {
    if (o.isMesh) for (const m of [].concat(o.material)) report.materials.push(m.isMToonMaterial ? 'MToonMaterial' : m.type);
  });
  report.materials = [...new Set(report.materials)].sort();

  // Expressions: from a settled neutral state, set each one to 1 and see what moves.
  const manager = vrm.expressionManager;
  const meshes = morphMeshes(vrm.scene);
  report.morph_mesh_count = meshes.length;
  report.expression_names = manager ? manager.expressions.map((e) => e.expressionName) : [];
  report.expressions = {};
  // The first update lets lookAt write its (zero) look* values once; later updates leave them alone.
  vrm.update(1 / 60);
  for (const expression of manager ? manager.expressions : []) {
    const name = expression.expressionName;
    const result = {
      preset: PRESET_NAMES.has(name),
      binds: expression.binds ? expression.binds.map(bindKind) : [],
      is_binary: !!expression.isBinary,
      set_ok: false, error: null, changed: [],
    };
    try {
      manager.resetValues();
      vrm.update(1 / 60);
      const before = snapshotInfluences(meshes);
      manager.setValue(name, 1);
      vrm.update(1 / 60);
      result.value = manager.getValue(name);
      result.changed = changedTargets(meshes, before);
      result.set_ok = true;
    } catch (err) {
      result.error = errorText(err);
    }
    report.expressions[name] = result;
  }
  if (manager) { manager.resetValues(); vrm.update(1 / 60); }

  // Spring bones: joint count, then whether the joints swing when the body moves.
  const springs = vrm.springBoneManager;
  report.spring_joint_count = springs ? springs.joints.size : 0;
  report.spring_collider_count = springs ? springs.colliders.length : 0;
  report.spring_max_swing_rad = 0;
  if (springs && springs.joints.size) {
    const joints = [...springs.joints];
    const rest = joints.map((j) => j.bone.quaternion.clone());
    for (let frame = 0; frame < 20; frame++) {
      vrm.scene.position.x += 0.05;  // a quick sideways step, 3 m/s
      vrm.scene.updateMatrixWorld(true);
      vrm.update(1 / 60);
    }
    report.spring_max_swing_rad = Math.max(...joints.map((j, i) => j.bone.quaternion.angleTo(rest[i])));
    vrm.scene.position.x = 0;
    vrm.scene.updateMatrixWorld(true);
    springs.reset();
    vrm.update(1 / 60);
  }
}

window.inspectModel = async function inspectModel({ url, kind, screenshot = true, width = 512, height = 512 }) {
  const report = { kind, loaded: false, load_error: null };
  const loader = new GLTFLoader();
  if (kind === 'vrm') loader.register((parser) => new VRMLoaderPlugin(parser));
  const t0 = performance.now();
  let gltf;
  try {
    gltf = await loader.loadAsync(url);
  } catch (err) {
    report.load_error = errorText(err);
    return report;
  }
  report.load_ms = performance.now() - t0;
  try {
    inspectGltf(gltf, report);
    if (kind === 'vrm') {
      const vrm = gltf.userData.vrm;
      if (!vrm) throw new Error('the file loaded as glTF but three-vrm found no VRM in it');
      inspectVrm(vrm, report);
      if (screenshot) report.screenshot_png = renderPng(vrm.scene, width, height);
    } else if (screenshot) {
      report.screenshot_png = renderPng(gltf.scene, width, height);
    }
    report.loaded = true;
  } catch (err) {
    report.load_error = errorText(err);
  }
  return report;
};
window.harnessReady = true;
