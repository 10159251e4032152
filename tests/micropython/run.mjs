// Runs a script inside the MicroPython WebAssembly port under Node.
//
// Input (stdin, JSON): {"script": "<python source>", "files": {"/abs/path": "<base64>"},
//                       "heap": <bytes, optional>}
// The files are written into the port's in-memory filesystem first (folders are
// created as needed). The script runs with top-level await allowed (the port has
// no asyncio.run). Output is the script's stdout; an uncaught exception prints its
// traceback to stderr and exits with status 1.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const out = [];
const err = [];
const mp = await loadMicroPython({
  heapsize: job.heap || 64 * 1024 * 1024,
  stdout: (line) => out.push(line),
  stderr: (line) => err.push(line),
  linebuffer: true,
});

function mkdirs(path) {
  let dir = "";
  for (const part of path.split("/").slice(1, -1)) {
    dir += "/" + part;
    try {
      mp.FS.mkdir(dir);
    } catch (e) {
      // EEXIST: already there
    }
  }
}

for (const [path, b64] of Object.entries(job.files || {})) {
  mkdirs(path);
  mp.FS.writeFile(path, Buffer.from(b64, "base64"));
}

let status = 0;
try {
  await mp.runPythonAsync(job.script);
} catch (e) {
  status = 1;
  err.push(String(e && e.message ? e.message : e));
}
process.stdout.write(out.map((l) => l + "\n").join(""));
process.stderr.write(err.map((l) => l + "\n").join(""));
process.exitCode = status;
