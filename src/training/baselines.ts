/**
 * Honest baselines for a one-step simulator, on physical grid values:
 *   persistence  u_{t+1} = u_t
 *   linear       u_{t+1} = [u_t, 1] W, W the ridge least-squares fit over the training split's
 *                consecutive frame pairs. X^T X and X^T Y accumulate pair by pair (float64), so
 *                the data streams; the solve is a Cholesky of (X^T X + lambda * mean(diag) * I).
 * Linear advection on a periodic grid with a whole-cell shift is exactly a linear map, so the
 * linear baseline must reach ~0 error there; persistence is exact on a static field.
 */

export interface OneStepMap {
  readonly name: string
  /** Frames [n, ...spatial, C] (flattened per frame) -> the next frames, same shape. */
  predict(frames: Float32Array, frameSize: number): Float32Array
}

export const persistence: OneStepMap = {
  name: 'persistence',
  predict: (frames) => Float32Array.from(frames),
}

export interface LinearFitOptions {
  /** Relative ridge strength: lambda * mean(diag(X^T X)) is added to the diagonal (default 1e-6). */
  lambda?: number
}

/** Streams (u_t, u_{t+1}) pairs into the normal equations of a ridge regression with a bias. */
export class LinearBaselineFitter {
  readonly dim: number
  private readonly xtx: Float64Array
  private readonly xty: Float64Array
  private readonly row: Float64Array
  pairs = 0

  constructor(readonly frameSize: number) {
    this.dim = frameSize + 1
    this.xtx = new Float64Array(this.dim * this.dim)
    this.xty = new Float64Array(this.dim * frameSize)
    this.row = new Float64Array(this.dim)
  }

  /** Every consecutive pair of each trajectory in [n, T, ...frame] (T frames of frameSize values). */
  addTrajectories(data: Float32Array, n: number, T: number): void {
    const F = this.frameSize
    if (data.length !== n * T * F) throw new Error(`linear baseline: ${data.length} values are not ${n} x ${T} frames of ${F}`)
    for (let i = 0; i < n; i++) {
      for (let t = 0; t + 1 < T; t++) {
        const at = (i * T + t) * F
        this.addPair(data.subarray(at, at + F), data.subarray(at + F, at + 2 * F))
      }
    }
  }

  addPair(x: Float32Array, y: Float32Array): void {
    const d = this.dim
    const F = this.frameSize
    const r = this.row
    for (let j = 0; j < F; j++) r[j] = x[j]
    r[F] = 1
    // Upper triangle only; mirrored in solve().
    for (let i = 0; i < d; i++) {
      const ri = r[i]
      if (ri === 0) continue
      const base = i * d
      for (let j = i; j < d; j++) this.xtx[base + j] += ri * r[j]
      const yb = i * F
      for (let j = 0; j < F; j++) this.xty[yb + j] += ri * y[j]
    }
    this.pairs++
  }

  solve(options: LinearFitOptions = {}): LinearBaseline {
    if (this.pairs === 0) throw new Error('linear baseline: no training pairs to fit')
    const d = this.dim
    const F = this.frameSize
    const a = new Float64Array(this.xtx)
    for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) a[i * d + j] = a[j * d + i]
    let trace = 0
    for (let i = 0; i < d; i++) trace += a[i * d + i]
    const ridge = (options.lambda ?? 1e-6) * Math.max(trace / d, 1e-12)
    for (let i = 0; i < d; i++) a[i * d + i] += ridge
    choleskyInPlace(a, d)
    const w = new Float64Array(this.xty)
    choleskySolveInPlace(a, d, w, F)
    return new LinearBaseline(w, F, this.pairs, ridge)
  }
}

export class LinearBaseline implements OneStepMap {
  readonly name = 'linear'
  private readonly w32: Float32Array

  /** weights: [(F + 1) x F], row F the bias. */
  constructor(readonly weights: Float64Array, readonly frameSize: number, readonly pairs: number, readonly ridge: number) {
    this.w32 = Float32Array.from(weights)
  }

  predict(frames: Float32Array, frameSize: number): Float32Array {
    const F = this.frameSize
    if (frameSize !== F) throw new Error(`linear baseline was fitted on frames of ${F} values, got ${frameSize}`)
    const n = frames.length / F
    const out = new Float32Array(frames.length)
    const acc = new Float64Array(F)
    const w = this.w32
    for (let s = 0; s < n; s++) {
      for (let j = 0; j < F; j++) acc[j] = w[F * F + j]
      const at = s * F
      for (let i = 0; i < F; i++) {
        const xi = frames[at + i]
        if (xi === 0) continue
        const base = i * F
        for (let j = 0; j < F; j++) acc[j] += xi * w[base + j]
      }
      for (let j = 0; j < F; j++) out[at + j] = acc[j]
    }
    return out
  }
}

/** Lower-triangular Cholesky factor L (A = L L^T) in place in the lower triangle of a [d x d]. */
export function choleskyInPlace(a: Float64Array, d: number): void {
  for (let j = 0; j < d; j++) {
    let sum = a[j * d + j]
    for (let k = 0; k < j; k++) sum -= a[j * d + k] * a[j * d + k]
    if (!(sum > 0)) throw new Error(`linear baseline: the normal matrix is not positive definite at row ${j} (increase lambda)`)
    const ljj = Math.sqrt(sum)
    a[j * d + j] = ljj
    for (let i = j + 1; i < d; i++) {
      let s = a[i * d + j]
      for (let k = 0; k < j; k++) s -= a[i * d + k] * a[j * d + k]
      a[i * d + j] = s / ljj
    }
  }
}

/** Solves L L^T X = B for B [d x m] (in place) with the factor from choleskyInPlace. */
export function choleskySolveInPlace(l: Float64Array, d: number, b: Float64Array, m: number): void {
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < i; k++) {
      const lik = l[i * d + k]
      if (lik === 0) continue
      for (let c = 0; c < m; c++) b[i * m + c] -= lik * b[k * m + c]
    }
    const inv = 1 / l[i * d + i]
    for (let c = 0; c < m; c++) b[i * m + c] *= inv
  }
  for (let i = d - 1; i >= 0; i--) {
    for (let k = i + 1; k < d; k++) {
      const lki = l[k * d + i]
      if (lki === 0) continue
      for (let c = 0; c < m; c++) b[i * m + c] -= lki * b[k * m + c]
    }
    const inv = 1 / l[i * d + i]
    for (let c = 0; c < m; c++) b[i * m + c] *= inv
  }
}

/** Iterates a one-step map from first frames [n, F] for `steps` steps -> [n, steps, F]. */
export function rolloutMap(map: OneStepMap, first: Float32Array, frameSize: number, steps: number): Float32Array {
  const n = first.length / frameSize
  const out = new Float32Array(n * steps * frameSize)
  let cur = first
  for (let k = 0; k < steps; k++) {
    cur = map.predict(cur, frameSize)
    for (let i = 0; i < n; i++) out.set(cur.subarray(i * frameSize, (i + 1) * frameSize), (i * steps + k) * frameSize)
  }
  return out
}

/** How many times lower the model's error is than the baseline's (> 1: the model is better). */
export function improvementRatio(baselineError: number, modelError: number): number | null {
  if (!Number.isFinite(baselineError) || !Number.isFinite(modelError)) return null
  if (modelError === 0) return baselineError === 0 ? 1 : null
  return baselineError / modelError
}
