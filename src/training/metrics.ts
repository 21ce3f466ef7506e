/**
 * PDEBench's error metrics on plain Float32Arrays, channels-last: fields [N, X(, Y), C] (or any
 * [N, ...spatial, C]) and trajectories [N, T, ...spatial, C]. Every metric is computed per
 * (sample, channel) in float64 and then averaged over both, as PDEBench does before it averages
 * over time; max error is the worst case over everything, as in PDEBench.
 *   RMSE   sqrt(mean_x (p - u)^2)
 *   nRMSE  ||p - u|| / ||u||            (a field of zeros counts its error against 1e-12)
 *   MAE    mean_x |p - u|
 *   cRMSE  |mean_x p - mean_x u|        (error of the conserved quantity: the spatial mean)
 *   bRMSE  sqrt(mean of (p - u)^2 over the boundary points); 2-D counts the corners twice, as PDEBench
 *   fRMSE  mean over the modes k of a band of |DFT(p - u)_k| / n  (1-D: rfft modes 0..n/2;
 *          2-D: radial shells floor(sqrt(kx^2 + ky^2)), as PDEBench bins them)
 * Accumulators take data batch by batch, so evaluation never holds a whole split in memory.
 */

/** PDEBench's default band edges on the (radial) mode index: low [0, 4), mid [4, 12), high [12, n/2]. */
export const DEFAULT_BAND_EDGES: readonly [number, number] = [4, 12]

export interface BandErrors {
  low: number
  mid: number
  high: number
}

export interface FieldMetrics {
  /** (sample, channel) pairs averaged over. */
  count: number
  rmse: number
  nrmse: number
  mae: number
  maxError: number
  crmse: number
  brmse: number
  frmse: BandErrors
  /** Mean |DFT(error)_k| / n per mode k (radial shell in 2-D): the error spectrum. */
  spectrum: number[]
}

export interface MetricOptions {
  /** Spatial dimensions of one field (default: shape.length - 2, i.e. [N, ...spatial, C]). */
  spatialDims?: number
  /** [lowEnd, midEnd] on the mode index (default PDEBench's [4, 12]). */
  bandEdges?: readonly [number, number]
  /** Compute fRMSE and the spectrum (default true; the DFT is the costly part). */
  spectral?: boolean
}

const NORM_FLOOR = 1e-12

/** Twiddle tables for a DFT of length n: cos/sin of 2*pi*j/n (index (k*x) mod n). */
class Dft {
  readonly cos: Float64Array
  readonly sin: Float64Array
  constructor(readonly n: number) {
    this.cos = new Float64Array(n)
    this.sin = new Float64Array(n)
    for (let j = 0; j < n; j++) {
      this.cos[j] = Math.cos((2 * Math.PI * j) / n)
      this.sin[j] = Math.sin((2 * Math.PI * j) / n)
    }
  }
}

const dftCache = new Map<number, Dft>()
function dft(n: number): Dft {
  let d = dftCache.get(n)
  if (!d) {
    d = new Dft(n)
    dftCache.set(n, d)
  }
  return d
}

/** |DFT(e)_k| for k = 0..n/2 of a real 1-D signal (O(n^2): fine at PDE grid sizes). */
export function dftMagnitudes1d(e: Float64Array): Float64Array {
  const n = e.length
  const {cos, sin} = dft(n)
  const out = new Float64Array(Math.floor(n / 2) + 1)
  for (let k = 0; k < out.length; k++) {
    let re = 0
    let im = 0
    let idx = 0
    for (let x = 0; x < n; x++) {
      re += e[x] * cos[idx]
      im -= e[x] * sin[idx]
      idx += k
      if (idx >= n) idx -= n
    }
    out[k] = Math.hypot(re, im)
  }
  return out
}

/** Sum of |DFT(e)_{kx,ky}| per radial shell floor(sqrt(kx^2 + ky^2)) < min(nx, ny)/2 (PDEBench's binning). */
export function dftShells2d(e: Float64Array, nx: number, ny: number): Float64Array {
  const shells = Math.floor(Math.min(nx, ny) / 2)
  const out = new Float64Array(shells)
  const dx = dft(nx)
  const dy = dft(ny)
  const hx = Math.floor(nx / 2)
  const hy = Math.floor(ny / 2)
  // Row transform along y for the modes 0..hy-1, then along x for 0..hx-1 (the quadrant PDEBench bins).
  const rowRe = new Float64Array(nx * hy)
  const rowIm = new Float64Array(nx * hy)
  for (let x = 0; x < nx; x++) {
    for (let ky = 0; ky < hy; ky++) {
      let re = 0
      let im = 0
      let idx = 0
      for (let y = 0; y < ny; y++) {
        const v = e[x * ny + y]
        re += v * dy.cos[idx]
        im -= v * dy.sin[idx]
        idx += ky
        if (idx >= ny) idx -= ny
      }
      rowRe[x * hy + ky] = re
      rowIm[x * hy + ky] = im
    }
  }
  for (let kx = 0; kx < hx; kx++) {
    for (let ky = 0; ky < hy; ky++) {
      const shell = Math.floor(Math.sqrt(kx * kx + ky * ky))
      if (shell > shells - 1) continue
      let re = 0
      let im = 0
      let idx = 0
      for (let x = 0; x < nx; x++) {
        const c = dx.cos[idx]
        const s = dx.sin[idx]
        const a = rowRe[x * hy + ky]
        const b = rowIm[x * hy + ky]
        re += a * c + b * s
        im += b * c - a * s
        idx += kx
        if (idx >= nx) idx -= nx
      }
      out[shell] += Math.hypot(re, im)
    }
  }
  return out
}

/** Boundary point indices of a grid: both ends in 1-D; the four edges (corners twice) in 2-D. */
function boundaryIndices(spatial: number[]): number[] {
  if (spatial.length === 1) return spatial[0] === 1 ? [0] : [0, spatial[0] - 1]
  if (spatial.length === 2) {
    const [nx, ny] = spatial
    const out: number[] = []
    for (let y = 0; y < ny; y++) out.push(y, (nx - 1) * ny + y)
    for (let x = 0; x < nx; x++) out.push(x * ny, x * ny + ny - 1)
    return out
  }
  // Higher dimensions: the first and last slab along the first axis.
  const slab = spatial.slice(1).reduce((a, b) => a * b, 1)
  const out: number[] = []
  for (let j = 0; j < slab; j++) out.push(j, (spatial[0] - 1) * slab + j)
  return out
}

function checkShapes(pred: Float32Array, truth: Float32Array, shape: number[], spatialDims: number): void {
  const size = shape.reduce((a, b) => a * b, 1)
  if (pred.length !== size || truth.length !== size) {
    throw new Error(`metrics: shape [${shape}] holds ${size} values; got pred ${pred.length}, truth ${truth.length}`)
  }
  if (!Number.isInteger(spatialDims) || spatialDims < 1 || shape.length < spatialDims + 2) {
    throw new Error(`metrics: shape [${shape}] has no room for ${spatialDims} spatial dimension(s) between N and C`)
  }
}

/** Streams PDEBench metrics over batches of fields [N, ...lead, ...spatial, C]; lead axes are folded into N. */
export class FieldMetricsAccumulator {
  private count = 0
  private rmse = 0
  private nrmse = 0
  private mae = 0
  private maxError = 0
  private sawNaN = false
  private crmse = 0
  private brmse = 0
  private bands = [0, 0, 0]
  private spectrum: Float64Array | null = null
  private spatial: number[] | null = null
  private readonly edges: readonly [number, number]

  constructor(private readonly options: MetricOptions = {}) {
    this.edges = options.bandEdges ?? DEFAULT_BAND_EDGES
  }

  add(pred: Float32Array, truth: Float32Array, shape: number[]): void {
    const sd = this.options.spatialDims ?? shape.length - 2
    checkShapes(pred, truth, shape, sd)
    const C = shape[shape.length - 1]
    const spatial = shape.slice(shape.length - 1 - sd, shape.length - 1)
    if (this.spatial && this.spatial.join() !== spatial.join()) throw new Error(`metrics: grid [${spatial}] differs from the earlier [${this.spatial}]`)
    this.spatial = spatial
    const P = spatial.reduce((a, b) => a * b, 1)
    const fields = pred.length / (P * C)
    const boundary = boundaryIndices(spatial)
    const e = new Float64Array(P)
    for (let f = 0; f < fields; f++) {
      const base = f * P * C
      for (let c = 0; c < C; c++) {
        let se = 0
        let st = 0
        let ae = 0
        let sp = 0
        let su = 0
        for (let j = 0; j < P; j++) {
          const p = pred[base + j * C + c]
          const u = truth[base + j * C + c]
          const d = p - u
          e[j] = d
          se += d * d
          st += u * u
          ae += Math.abs(d)
          if (Math.abs(d) > this.maxError) this.maxError = Math.abs(d)
          else if (Number.isNaN(d)) this.sawNaN = true
          sp += p
          su += u
        }
        let sb = 0
        for (const j of boundary) sb += e[j] * e[j]
        this.rmse += Math.sqrt(se / P)
        this.nrmse += Math.sqrt(se) / Math.max(Math.sqrt(st), NORM_FLOOR)
        this.mae += ae / P
        this.crmse += Math.abs(sp - su) / P
        this.brmse += Math.sqrt(sb / boundary.length)
        if (this.options.spectral !== false) this.addSpectrum(e, spatial)
        this.count++
      }
    }
  }

  private addSpectrum(e: Float64Array, spatial: number[]): void {
    let modes: Float64Array
    let scale: number
    if (spatial.length === 1) {
      modes = dftMagnitudes1d(e)
      scale = 1 / spatial[0]
    } else if (spatial.length === 2) {
      modes = dftShells2d(e, spatial[0], spatial[1])
      scale = 1 / (spatial[0] * spatial[1])
    } else {
      return // no spectrum beyond 2-D
    }
    if (!this.spectrum) this.spectrum = new Float64Array(modes.length)
    const [lo, mid] = this.edges
    const sums = [0, 0, 0]
    const counts = [0, 0, 0]
    for (let k = 0; k < modes.length; k++) {
      const v = modes[k] * scale
      this.spectrum[k] += v
      const band = k < lo ? 0 : k < mid ? 1 : 2
      sums[band] += v
      counts[band]++
    }
    for (let b = 0; b < 3; b++) this.bands[b] += counts[b] > 0 ? sums[b] / counts[b] : 0
  }

  result(): FieldMetrics {
    const n = Math.max(this.count, 1)
    return {
      count: this.count,
      rmse: this.rmse / n,
      nrmse: this.nrmse / n,
      mae: this.mae / n,
      maxError: this.sawNaN ? Number.NaN : this.maxError,
      crmse: this.crmse / n,
      brmse: this.brmse / n,
      frmse: {low: this.bands[0] / n, mid: this.bands[1] / n, high: this.bands[2] / n},
      spectrum: this.spectrum ? Array.from(this.spectrum, (v) => v / n) : [],
    }
  }
}

/** All metrics of pred vs truth, fields [N, ...spatial, C]. */
export function fieldMetrics(pred: Float32Array, truth: Float32Array, shape: number[], options: MetricOptions = {}): FieldMetrics {
  const acc = new FieldMetricsAccumulator(options)
  acc.add(pred, truth, shape)
  return acc.result()
}

export interface RolloutMetrics {
  /** Every frame of every trajectory, averaged as PDEBench averages over time. */
  overall: FieldMetrics
  /** nRMSE and RMSE at rollout step 1..T (index 0 is step 1 when the first frame is the first prediction). */
  nrmsePerStep: number[]
  rmsePerStep: number[]
}

/** Metrics of trajectories [N, T, ...spatial, C]: overall, and per step. */
export class RolloutMetricsAccumulator {
  private readonly overall: FieldMetricsAccumulator
  private perStep: FieldMetricsAccumulator[] = []

  constructor(private readonly options: MetricOptions & {spatialDims: number}) {
    this.overall = new FieldMetricsAccumulator(options)
  }

  add(pred: Float32Array, truth: Float32Array, shape: number[]): void {
    const sd = this.options.spatialDims
    checkShapes(pred, truth, shape, sd + 1)
    this.overall.add(pred, truth, shape)
    const [n, T] = shape
    const frame = shape.slice(2).reduce((a, b) => a * b, 1)
    const frameShape = [1, ...shape.slice(2)]
    while (this.perStep.length < T) this.perStep.push(new FieldMetricsAccumulator({...this.options, spectral: false}))
    for (let i = 0; i < n; i++) {
      for (let t = 0; t < T; t++) {
        const at = (i * T + t) * frame
        this.perStep[t].add(pred.subarray(at, at + frame), truth.subarray(at, at + frame), frameShape)
      }
    }
  }

  result(): RolloutMetrics {
    const steps = this.perStep.map((a) => a.result())
    return {overall: this.overall.result(), nrmsePerStep: steps.map((s) => s.nrmse), rmsePerStep: steps.map((s) => s.rmse)}
  }
}

export function rolloutMetrics(pred: Float32Array, truth: Float32Array, shape: number[], options: MetricOptions & {spatialDims: number}): RolloutMetrics {
  const acc = new RolloutMetricsAccumulator(options)
  acc.add(pred, truth, shape)
  return acc.result()
}

/** The metrics as flat `prefix/name` numbers (results summaries, W&B), spectrum left out. */
export function flattenMetrics(prefix: string, m: FieldMetrics): Record<string, number> {
  return {
    [`${prefix}/rmse`]: m.rmse,
    [`${prefix}/nrmse`]: m.nrmse,
    [`${prefix}/mae`]: m.mae,
    [`${prefix}/max_error`]: m.maxError,
    [`${prefix}/crmse`]: m.crmse,
    [`${prefix}/brmse`]: m.brmse,
    [`${prefix}/frmse_low`]: m.frmse.low,
    [`${prefix}/frmse_mid`]: m.frmse.mid,
    [`${prefix}/frmse_high`]: m.frmse.high,
  }
}
