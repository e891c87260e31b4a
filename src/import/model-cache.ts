/**
 * `--model` accepts a GGUF file or a Hugging Face folder. A folder is converted once into the cache
 * (`cacheDir()/models`), keyed by a hash of what the conversion reads: config.json, the tokenizer files, the chat
 * template, and each safetensors file's name, size, mtime and header (names, dtypes, shapes, offsets). Changing any of them
 * (or the converter's version or the tensor type) gives a new cache entry.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { cacheDir } from '../util/paths.js';
import { convertToGguf, detectSource, type ConvertType } from './convert.js';

/** Bump when the converter's output changes, so stale cache entries are not reused. */
export const CONVERTER_VERSION = 1;

export interface ResolveOptions {
  /** Tensor type of the conversion (default 'auto': BF16 checkpoints stay BF16, others F16). */
  type?: ConvertType;
  /** llama2.c checkpoints: their tokenizer.bin. */
  tokenizer?: string;
  /** Cache folder (default `cacheDir()/models`). */
  cache?: string;
  /** Progress bar: as ConvertOptions.progress. */
  progress?: boolean | 'auto';
  /** Told when a conversion starts (e.g. to print "converting … once into the cache"). */
  onConvert?: (src: string, out: string) => void;
}

/** The GGUF path to load for `pathOrFolder`: a .gguf as it is, a Hugging Face folder or llama2.c .bin via the cache. */
export function resolveModel(pathOrFolder: string, opts: ResolveOptions = {}): string {
  const src = resolve(pathOrFolder);
  const kind = detectSource(src);
  if (kind === 'gguf') return src;
  const type = opts.type ?? 'auto';
  const key = kind === 'hf' ? folderKey(src, type) : fileKey(src, opts.tokenizer, type);
  const dir = opts.cache ?? join(cacheDir(), 'models');
  const name = basename(src).replace(/\.bin$/, '').replace(/[^A-Za-z0-9._-]+/g, '_') || 'model';
  const out = join(dir, `${name}-${key.slice(0, 16)}.gguf`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  opts.onConvert?.(src, out);
  // convertToGguf writes to a temporary name and renames, so concurrent conversions never expose a partial file.
  convertToGguf(src, out, { type, tokenizer: opts.tokenizer, progress: opts.progress ?? 'auto' });
  return out;
}

/** The cache key of a Hugging Face folder. */
export function folderKey(folder: string, type: ConvertType = 'auto'): string {
  if (!existsSync(join(folder, 'config.json'))) {
    throw new InvalidInputError(`${folder} has no config.json: it is not a Hugging Face model folder`);
  }
  const h = createHash('sha256');
  h.update(`lynx-convert v${CONVERTER_VERSION} type=${type}\n`);
  const files = readdirSync(folder).sort();
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'chat_template.json', 'model.safetensors.index.json']) {
    if (files.includes(f)) h.update(`${f}\n`).update(readFileSync(join(folder, f)));
  }
  for (const f of files.filter((x) => x.endsWith('.safetensors'))) {
    // Size, mtime and header: a re-downloaded or edited shard invalidates the entry without hashing gigabytes.
    const st = statSync(join(folder, f));
    h.update(`${f} ${st.size} ${Math.floor(st.mtimeMs)}\n`).update(safetensorsHeader(join(folder, f)));
  }
  return h.digest('hex');
}

function fileKey(path: string, tokenizer: string | undefined, type: ConvertType): string {
  if (!tokenizer) throw new InvalidInputError(`${path} is a llama2.c checkpoint: give its tokenizer.bin too`);
  const h = createHash('sha256');
  h.update(`lynx-convert v${CONVERTER_VERSION} type=${type}\n`);
  h.update(readFileSync(path)).update(readFileSync(tokenizer));
  return h.digest('hex');
}

/** The length prefix and JSON header of a safetensors file (the tensor layout, without reading the data). */
function safetensorsHeader(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) < 8) return len;
    const n = Math.min(Number(len.readBigUInt64LE(0)), Math.max(0, size - 8), 100_000_000);
    const header = Buffer.alloc(8 + n);
    len.copy(header);
    readSync(fd, header, 8, n, 8);
    return header;
  } finally {
    closeSync(fd);
  }
}
