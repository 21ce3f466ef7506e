/**
 * A small deterministic RNG (sfc32) whose whole state is four uint32 words, so it can be saved in a
 * checkpoint and restored: a resumed run draws the same numbers as an uninterrupted one.
 * tfjs's own random ops keep hidden state, so every random number in training comes from here
 * (init, shuffling, dropout masks, diffusion tau and noise).
 */

export interface RngState {
  algo: 'sfc32'
  s: [number, number, number, number]
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number | RngState = 0) {
    if (typeof seed === 'object') {
      ;[this.a, this.b, this.c, this.d] = seed.s.map((x) => x >>> 0) as [number, number, number, number]
      return
    }
    // splitmix32 spreads any integer seed over the four words.
    let x = seed >>> 0
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296
  }

  /** Standard normal by Box-Muller (no cached spare, so the state stays four words). */
  normal(): number {
    const u1 = 1 - this.uniform() // (0, 1]
    const u2 = this.uniform()
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n)
  }

  /** Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 through Gamma(shape + 1) * U^(1/shape). */
  gamma(shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * (1 - this.uniform()) ** (1 / shape)
    const d = shape - 1 / 3
    const c = 1 / Math.sqrt(9 * d)
    for (;;) {
      let x: number
      let v: number
      do {
        x = this.normal()
        v = 1 + c * x
      } while (v <= 0)
      v = v * v * v
      const u = 1 - this.uniform()
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v
    }
  }

  /** Beta(alpha, beta) in [0, 1], as X / (X + Y) of two gamma draws. */
  beta(alpha: number, beta: number): number {
    const x = this.gamma(alpha)
    return x / (x + this.gamma(beta))
  }

  fillUniform(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform()
    return out
  }

  fillNormal(n: number, std = 1): Float32Array {
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = std * this.normal()
    return out
  }

  /** A shuffled copy of 0..n-1 (Fisher-Yates). */
  permutation(n: number): number[] {
    const p = Array.from({length: n}, (_, i) => i)
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[p[i], p[j]] = [p[j], p[i]]
    }
    return p
  }

  /** An independent stream derived from this one (advances this one by four draws). */
  fork(): Rng {
    return new Rng({algo: 'sfc32', s: [this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32()]})
  }

  getState(): RngState {
    return {algo: 'sfc32', s: [this.a, this.b, this.c, this.d]}
  }

  setState(state: RngState): void {
    ;[this.a, this.b, this.c, this.d] = state.s.map((x) => x >>> 0) as [number, number, number, number]
  }
}
