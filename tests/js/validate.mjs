// Validates glTF/GLB files with the Khronos glTF-Validator (npm `gltf-validator`).
// Usage: node tests/js/validate.mjs FILE...
// Prints one JSON object {FILE: report, ...} on stdout; one node process
// validates every file, because starting the validator costs more than a check.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { validateBytes } from "gltf-validator";

const reports = {};
for (const path of process.argv.slice(2)) {
  const bytes = new Uint8Array(await readFile(path));
  try {
    // maxIssues 0 = no limit: a truncated list could hide a warning.
    reports[path] = await validateBytes(bytes, { uri: basename(path), maxIssues: 0 });
  } catch (error) {
    // The validator rejects input it cannot even parse as glTF/GLB.
    reports[path] = { fatal: String(error) };
  }
}
process.stdout.write(JSON.stringify(reports));
