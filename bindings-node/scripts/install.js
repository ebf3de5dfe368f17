#!/usr/bin/env node
'use strict';
// The package's `install` script: builds the native module from source with
// cargo and copies it next to index.js as tierfs.<platform>-<arch>[-<abi>].node.
// It needs only Node and cargo (no npm dependencies: `npm install /path/to/
// bindings-node` from another project does not install the linked folder's
// own dependencies, so this script cannot rely on any).
//
// Environment:
//   TIERFS_NODE_PROFILE   cargo profile (default: release)
//   CARGO                 the cargo binary (default: cargo on PATH, then ~/.cargo/bin/cargo)
//   CARGO_TARGET_DIR      honoured as cargo honours it

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const pkgDir = path.resolve(__dirname, '..');
const manifest = path.join(pkgDir, 'Cargo.toml');
const profile = process.env.TIERFS_NODE_PROFILE || 'release';

function fail(message) {
  console.error(`tierfs install: ${message}`);
  process.exit(1);
}

function nativeFileName() {
  const { platform, arch } = process;
  let abi = '';
  if (platform === 'linux') {
    const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
    abi = report && report.header && report.header.glibcVersionRuntime ? '-gnu' : '-musl';
  }
  return `tierfs.${platform}-${arch}${abi}.node`;
}

function findCargo() {
  const candidates = [process.env.CARGO, 'cargo', path.join(os.homedir(), '.cargo', 'bin', 'cargo')].filter(Boolean);
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  return fail('cargo was not found; install Rust (https://rustup.rs) or set CARGO to the cargo binary, then reinstall');
}

if (!fs.existsSync(manifest)) {
  fail(`${manifest} is missing: this package builds from the TierFS source tree; install it from its folder`);
}

const cargo = findCargo();
const args = [
  'build',
  '--manifest-path',
  manifest,
  '-p',
  'tierfs-node',
  '--lib',
  '--profile',
  profile,
  '--message-format=json-render-diagnostics',
];
console.error(`tierfs install: ${cargo} ${args.join(' ')}`);
const started = Date.now();
const build = spawnSync(cargo, args, {
  cwd: pkgDir,
  encoding: 'utf8',
  maxBuffer: 256 * 1024 * 1024,
  stdio: ['ignore', 'pipe', 'inherit'],
});
if (build.error) fail(`cannot run cargo: ${build.error.message}`);
if (build.status !== 0) fail(`cargo build failed (exit ${build.status}); see the messages above`);

let library;
for (const line of build.stdout.split('\n')) {
  if (!line.startsWith('{')) continue;
  let message;
  try {
    message = JSON.parse(line);
  } catch {
    continue;
  }
  if (message.reason === 'compiler-artifact' && message.target && message.target.name === 'tierfs_node') {
    library = message.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || library;
  }
}
if (!library) fail('cargo built no tierfs_node library; is bindings-node a member of the workspace?');

const destination = path.join(pkgDir, nativeFileName());
const staging = `${destination}.${process.pid}.tmp`;
fs.copyFileSync(library, staging);
fs.renameSync(staging, destination);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.error(`tierfs install: ${path.relative(pkgDir, destination)} from ${library} (${profile}, ${seconds}s)`);
