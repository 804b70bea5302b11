// Validates glTF / GLB files with the Khronos glTF-Validator (npm `gltf-validator`).
//
//   node tests/js/validate.mjs FILE...     validate files on disk
//   node tests/js/validate.mjs < frames    validate files sent on stdin, each framed as
//                                          u32le name length, name (UTF-8), u32le data length, data
//
// Prints one JSON object {name: report, ...} on stdout. One node process validates
// every file: starting node and the validator costs more than checking a file.
// A file the validator cannot even parse gets {"fatal": "..."} as its report.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { validateBytes } from "gltf-validator";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const all = Buffer.concat(chunks);
  const files = [];
  for (let at = 0; at < all.length; ) {
    const nameLength = all.readUInt32LE(at);
    const name = all.toString("utf8", at + 4, at + 4 + nameLength);
    at += 4 + nameLength;
    const dataLength = all.readUInt32LE(at);
    files.push([name, new Uint8Array(all.buffer, all.byteOffset + at + 4, dataLength)]);
    at += 4 + dataLength;
  }
  return files;
}

const paths = process.argv.slice(2);
const files = paths.length
  ? await Promise.all(paths.map(async (p) => [p, new Uint8Array(await readFile(p))]))
  : await readStdin();

const reports = {};
for (const [name, bytes] of files) {
  try {
    // maxIssues 0 = no limit: a truncated list could hide a warning.
    reports[name] = await validateBytes(bytes, { uri: basename(name), maxIssues: 0 });
  } catch (error) {
    reports[name] = { fatal: String(error) };
  }
}
process.stdout.write(JSON.stringify(reports));
