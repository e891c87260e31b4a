import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama } from '../src/engine/index.js';

/** Load llama.cpp in a fresh process (it loads once per process) with the given environment; its report as JSON. */
function loadInChild(env: Record<string, string>): { ok: boolean; backend?: string; libDir?: string; error?: string } {
  const script =
    "import { loadLlama } from './src/engine/index.ts';" +
    'try { const l = loadLlama(); console.log(JSON.stringify({ ok: true, backend: l.backend, libDir: l.libDir })); }' +
    ' catch (e) { console.log(JSON.stringify({ ok: false, error: `${e.name}: ${e.message}` })); }';
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, LYNX_BACKEND: 'cpu', ...env },
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('loading llama.cpp from an own build folder (LYNX_LLAMA_LIB_DIR)', () => {
  it('loads the build in the named folder', () => {
    // A folder of its own holding the packaged build's files (as links), so the report shows which folder was used.
    const packaged = loadLlama().libDir;
    const dir = mkdtempSync(join(tmpdir(), 'lynx-ownlib-'));
    try {
      for (const f of readdirSync(packaged)) symlinkSync(join(packaged, f), join(dir, f));
      const r = loadInChild({ LYNX_LLAMA_LIB_DIR: dir });
      expect(r).toMatchObject({ ok: true, backend: 'cpu', libDir: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a folder without a llama.cpp build, naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lynx-nolib-'));
    try {
      writeFileSync(join(dir, 'README'), 'not a build');
      const r = loadInChild({ LYNX_LLAMA_LIB_DIR: dir });
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/BackendLoadError: no llama\.cpp build in .*lynx-nolib-/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
