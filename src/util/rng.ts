/**
 * Seeded pseudo-random numbers (xoshiro128**), so every sampled rollout, split and initialisation is reproducible.
 * Seeds are expanded with splitmix32 so nearby seeds give unrelated streams.
 */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number) {
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** An independent generator in the same state (it continues the same stream). */
  clone(): Rng {
    const r = new Rng(0);
    r.s.set(this.s);
    return r;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** A new independent generator derived from this seed and a label (e.g. a problem id). */
  static derive(seed: number, label: string | number): Rng {
    let h = 2166136261 ^ (seed >>> 0);
    const text = String(label);
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
    return new Rng(h >>> 0);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------------
// NumPy's `np.random.default_rng(seed).permutation(n)`, bit for bit, so problem subsets match LYNX's scripts
// (`perm = rng.permutation(total)`, then `sorted(perm[offset:offset + n])`). default_rng is PCG64 seeded through
// SeedSequence; `permutation` shuffles arange(n) with Fisher-Yates, drawing each index by masked rejection
// (`random_interval`: 32-bit draws below 2^32, buffered halves of a 64-bit output).

const M32 = 0xffffffffn;
const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;

/** SeedSequence(seed).generate_state(words, uint32) for a non-negative integer seed (no spawn key). */
function seedSequenceState(seed: number | bigint, words: number): number[] {
  const mul32 = (a: number, b: number) => Math.imul(a, b) >>> 0;
  let entropy = BigInt(seed);
  if (entropy < 0n) throw new RangeError('a NumPy seed must be non-negative');
  const ent: number[] = [];
  do {
    ent.push(Number(entropy & M32));
    entropy >>= 32n;
  } while (entropy > 0n);
  const POOL = 4;
  let hashConst = 0x43b0d7e5;
  const hashmix = (value: number) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = mul32(hashConst, 0x931e8875);
    value = mul32(value, hashConst);
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x: number, y: number) => {
    const r = (mul32(0xca01f9dd, x) - mul32(0x4973f715, y)) >>> 0;
    return (r ^ (r >>> 16)) >>> 0;
  };
  const pool = new Array<number>(POOL);
  for (let i = 0; i < POOL; i++) pool[i] = hashmix(i < ent.length ? ent[i]! : 0);
  for (let s = 0; s < POOL; s++) for (let d = 0; d < POOL; d++) if (s !== d) pool[d] = mix(pool[d]!, hashmix(pool[s]!));
  for (let s = POOL; s < ent.length; s++) for (let d = 0; d < POOL; d++) pool[d] = mix(pool[d]!, hashmix(ent[s]!));
  let hc = 0x8b51f9dd;
  const out: number[] = [];
  for (let i = 0; i < words; i++) {
    let v = (pool[i % POOL]! ^ hc) >>> 0;
    hc = mul32(hc, 0x58f38ded);
    v = mul32(v, hc);
    out.push((v ^ (v >>> 16)) >>> 0);
  }
  return out;
}

/** NumPy's PCG64 (XSL-RR 128/64) as `default_rng` seeds it. */
export class NumpyPcg64 {
  private state: bigint;
  private readonly inc: bigint;
  private buffered: number | null = null;
  private static readonly MULT = (2549297995355413924n << 64n) + 4865540595714422341n;

  constructor(seed: number | bigint) {
    const w = seedSequenceState(seed, 8).map(BigInt);
    const u64 = (i: number) => w[2 * i]! | (w[2 * i + 1]! << 32n);
    const initState = (u64(0) << 64n) | u64(1);
    const initSeq = (u64(2) << 64n) | u64(3);
    this.inc = ((initSeq << 1n) | 1n) & M128;
    this.state = 0n;
    this.step();
    this.state = (this.state + initState) & M128;
    this.step();
  }

  private step(): void {
    this.state = (this.state * NumpyPcg64.MULT + this.inc) & M128;
  }

  next64(): bigint {
    this.step();
    const x = ((this.state >> 64n) ^ this.state) & M64;
    const rot = Number(this.state >> 122n);
    return ((x >> BigInt(rot)) | (x << BigInt((64 - rot) & 63))) & M64;
  }

  next32(): number {
    if (this.buffered !== null) {
      const v = this.buffered;
      this.buffered = null;
      return v;
    }
    const n = this.next64();
    this.buffered = Number(n >> 32n);
    return Number(n & M32);
  }

  /** `random_interval(max)`: uniform in [0, max] by masked rejection. */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    for (const s of [1, 2, 4, 8, 16]) mask |= mask >>> s;
    mask >>>= 0;
    if (max > 0xffffffff) throw new RangeError('interval above 2^32 is not needed here');
    for (;;) {
      const v = (this.next32() & mask) >>> 0;
      if (v <= max) return v;
    }
  }
}

/** `np.random.default_rng(seed).permutation(n)` as a list of indices. */
export function numpyPermutation(n: number, seed: number | bigint): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`permutation of ${n} items`);
  const rng = new NumpyPcg64(seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.interval(i);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
