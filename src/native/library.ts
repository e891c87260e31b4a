/**
 * Finds and loads one of llama.cpp's prebuilt builds (`@node-llama-cpp/linux-x64[-cuda|-vulkan]`, pinned), routes its
 * logging, and checks that its ABI matches the declarations (llama.ts, ggml.ts, ggml-opt.ts) before anything else
 * touches it.
 */
import koffi from 'koffi';
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { declareApi, type LlamaApi } from './llama.js';
import { declareGgml, ggml_log_callback, GGML_BACKEND_DEVICE_TYPES, type GgmlApi } from './ggml.js';
import { declareGgmlOpt, type GgmlOptApi } from './ggml-opt.js';
import { checkAbi } from './abi.js';
import { AbiMismatchError, BackendLoadError } from './errors.js';

export type BackendName = 'cpu' | 'cuda' | 'vulkan';
export type BackendChoice = 'auto' | BackendName;
export type LogLevel = 'none' | 'error' | 'warn' | 'info' | 'debug';

export interface LoadLlamaOptions {
  /** 'auto' (default) picks a GPU build when one loads and finds a GPU, else CPU. Env `LYNX_BACKEND` overrides 'auto'. */
  backend?: BackendChoice;
  /** llama.cpp's own log lines at or above this level go to `onLog` (default: stderr); default 'error'. Env `LYNX_LOG_LEVEL`. */
  logLevel?: LogLevel;
  onLog?: (level: LogLevel, text: string) => void;
  /**
   * Load llama.cpp from this folder instead of the pinned packages: a build of the same llama.cpp version (for
   * example from the source inside `node-llama-cpp@3.22.1`, built for a GPU the packages do not cover). The ABI check
   * refuses any other version. Env `LYNX_LLAMA_LIB_DIR`.
   */
  libDir?: string;
}

export interface Llama {
  /** llama.h (and the few ggml calls the engine makes). */
  api: LlamaApi;
  /** ggml.h and ggml-backend.h: graphs built in TypeScript (src/graph/). */
  ggml: GgmlApi;
  /** ggml-opt.h: ggml's optimizer. */
  ggmlOpt: GgmlOptApi;
  backend: BackendName;
  /** Folder holding the loaded shared libraries. */
  libDir: string;
  /** Devices llama.cpp sees, e.g. [{ name: 'CPU', type: 'cpu' }, { name: 'CUDA0', type: 'gpu' }]. */
  devices: { name: string; description: string; type: 'cpu' | 'gpu' | 'igpu' | 'accel' }[];
}

const PACKAGES: Record<BackendName, string> = {
  cpu: '@node-llama-cpp/linux-x64',
  cuda: '@node-llama-cpp/linux-x64-cuda',
  vulkan: '@node-llama-cpp/linux-x64-vulkan',
};

const LEVELS: LogLevel[] = ['none', 'debug', 'info', 'warn', 'error'];
// ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
const GGML_LEVEL: Record<number, LogLevel> = { 1: 'debug', 2: 'info', 3: 'warn', 4: 'error' };

let loaded: Llama | undefined;
let logRoute: { min: number; onLog: (level: LogLevel, text: string) => void; lastLevel: LogLevel } | undefined;
let logCallback: unknown; // keep the registered callback alive for the life of the process

/** Load llama.cpp once per process (the libraries cannot be unloaded). Later calls return the same instance. */
export function loadLlama(opts: LoadLlamaOptions = {}): Llama {
  const level = (process.env.LYNX_LOG_LEVEL as LogLevel | undefined) ?? opts.logLevel ?? 'error';
  if (!LEVELS.includes(level)) throw new BackendLoadError(`unknown log level '${level}' (use one of ${LEVELS.join(', ')})`);
  setLogRoute(level, opts.onLog);
  if (loaded) return loaded;

  const ownDir = opts.libDir ?? (process.env.LYNX_LLAMA_LIB_DIR || undefined);
  if (ownDir) {
    if (!existsSync(ownDir) || !readdirSync(ownDir).some(isLibllama)) {
      throw new BackendLoadError(`no llama.cpp build in ${ownDir} (LYNX_LLAMA_LIB_DIR / libDir): expected libllama.so, libggml.so and libggml-base.so there`);
    }
    loaded = openBuild(undefined, ownDir);
    return loaded;
  }
  const envBackend = process.env.LYNX_BACKEND as BackendChoice | undefined;
  const choice: BackendChoice = (opts.backend && opts.backend !== 'auto' ? opts.backend : envBackend) ?? 'auto';
  if (!['auto', 'cpu', 'cuda', 'vulkan'].includes(choice)) {
    throw new BackendLoadError(`unknown backend '${choice}' (use auto, cpu, cuda or vulkan)`);
  }
  const candidates: BackendName[] = choice === 'auto' ? autoCandidates() : [choice];
  const failures: string[] = [];
  for (const backend of candidates) {
    const libDir = findLibDir(backend);
    if (!libDir) {
      failures.push(`${backend}: package ${PACKAGES[backend]} is not installed`);
      continue;
    }
    try {
      loaded = openBuild(backend, libDir);
      return loaded;
    } catch (e) {
      if (e instanceof AbiMismatchError) throw e;
      failures.push(`${backend}: ${(e as Error).message}`);
      // A build whose libraries loaded cannot be unloaded; only a build that failed before loading libllama may fall through.
      if (loaded) break;
    }
  }
  throw new BackendLoadError(`could not load llama.cpp:\n  ${failures.join('\n  ')}`);
}

/** The already loaded instance, loading the default one if needed. */
export function llama(): Llama {
  return loaded ?? loadLlama();
}

function autoCandidates(): BackendName[] {
  const out: BackendName[] = [];
  // Only try a GPU build when its driver library is present: once a build's libllama is loaded it cannot be swapped.
  if (canDlopen('libcuda.so.1') && findLibDir('cuda')) out.push('cuda');
  if (canDlopen('libvulkan.so.1') && existsSync('/dev/dri') && findLibDir('vulkan')) out.push('vulkan');
  out.push('cpu');
  return out;
}

function canDlopen(name: string): boolean {
  try {
    koffi.load(name);
    return true;
  } catch {
    return false;
  }
}

function findLibDir(backend: BackendName): string | undefined {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    // The packages export only their entry point (dist/index.js), so locate the package root from it.
    entry = require.resolve(PACKAGES[backend]);
  } catch {
    return undefined;
  }
  const bins = join(dirname(dirname(entry)), 'bins');
  if (!existsSync(bins)) return undefined;
  for (const sub of readdirSync(bins)) {
    const dir = join(bins, sub);
    if (readdirSync(dir).some(isLibllama)) return dir;
  }
  return undefined;
}

/** libllama as the packages name it (versioned) or as a CMake build names it. */
const LIBLLAMA = /^libllama(\.[a-z]+)?\.v[\d.]+\.so$|^libllama\.so$/;

function isLibllama(file: string): boolean {
  return LIBLLAMA.test(file);
}

function findFile(dir: string, pattern: RegExp): string {
  const hit = readdirSync(dir).find((f) => pattern.test(f));
  if (!hit) throw new BackendLoadError(`no file matching ${pattern} in ${dir}`);
  return join(dir, hit);
}

/** Load the build in libDir; `backend` undefined (an own build): named after the GPU devices it brings, if any. */
function openBuild(named: BackendName | undefined, libDir: string): Llama {
  const ggmlBase = koffi.load(join(libDir, 'libggml-base.so'));
  const ggml = koffi.load(findFile(libDir, /^libggml(\.[a-z]+)?\.v[\d.]+\.so$|^libggml\.so$/));
  const lib = koffi.load(findFile(libDir, LIBLLAMA));
  const ggmlApi = declareGgml(ggmlBase, ggml);
  const ggmlOpt = declareGgmlOpt(ggmlBase);
  const api = declareApi(lib, ggmlApi);
  installLogger(api);
  checkAbi(api, ggmlOpt);
  api.ggml_backend_load_all_from_path(libDir);
  api.llama_backend_init();
  const devices = [];
  const n = Number(api.ggml_backend_dev_count());
  for (let i = 0; i < n; i++) {
    const dev = api.ggml_backend_dev_get(i);
    devices.push({
      name: api.ggml_backend_dev_name(dev),
      description: api.ggml_backend_dev_description(dev),
      type: GGML_BACKEND_DEVICE_TYPES[api.ggml_backend_dev_type(dev)] ?? 'accel',
    });
  }
  const gpuName = devices.find((d) => d.type === 'gpu' || d.type === 'igpu')?.name ?? '';
  const backend: BackendName = named ?? (/^cuda/i.test(gpuName) ? 'cuda' : /^vulkan/i.test(gpuName) ? 'vulkan' : 'cpu');
  if (!devices.some((d) => d.type === 'cpu')) throw new BackendLoadError(`${backend} build loaded no CPU backend from ${libDir}`);
  if (backend !== 'cpu' && !devices.some((d) => d.type === 'gpu' || d.type === 'igpu')) {
    // The GPU build still runs on its CPU backend; say so rather than pretend.
    routeLog('warn', `llama.cpp ${backend} build found no GPU; running on CPU\n`);
  }
  return { api, ggml: ggmlApi, ggmlOpt, backend, libDir, devices };
}

function setLogRoute(level: LogLevel, onLog?: (level: LogLevel, text: string) => void): void {
  const min = level === 'none' ? Infinity : LEVELS.indexOf(level);
  logRoute = { min, onLog: onLog ?? ((_l, text) => process.stderr.write(text)), lastLevel: 'info' };
}

function routeLog(level: LogLevel, text: string): void {
  // While a sink collects llama.cpp's reasons for a failing call, they go into our error message instead.
  const sink = sinks[sinks.length - 1];
  if (sink && (level === 'error' || level === 'warn')) return sink(text);
  if (!logRoute) return;
  if (LEVELS.indexOf(level) >= logRoute.min) logRoute.onLog(level, text);
}

function installLogger(api: LlamaApi): void {
  logCallback = koffi.register((lvl: number, text: string) => {
    // GGML_LOG_LEVEL_CONT (5) continues the previous line at its level.
    const level = lvl === 5 ? logRoute?.lastLevel ?? 'info' : GGML_LEVEL[lvl] ?? 'info';
    if (logRoute) logRoute.lastLevel = level;
    routeLog(level, text);
  }, koffi.pointer(ggml_log_callback));
  api.llama_log_set(logCallback, null);
}

type Sink = (text: string) => void;
const sinks: Sink[] = [];
/**
 * While set, llama.cpp's warning and error lines also go to this sink (innermost first), so that a failing call can
 * put llama.cpp's own reason into the error it throws. Returns the function that removes it.
 */
export function setErrorSink(sink: Sink): () => void {
  sinks.push(sink);
  return () => {
    const i = sinks.lastIndexOf(sink);
    if (i >= 0) sinks.splice(i, 1);
  };
}
