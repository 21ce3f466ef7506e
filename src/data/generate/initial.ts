/**
 * PDEBench-style random initial conditions: a sum of a few sines with random amplitudes,
 * phases and integer wavenumbers on the periodic domain [0, 1). Evaluated as exact cell
 * averages, which is what a finite-volume scheme evolves (and keeps the mean exact).
 */
import type {Rng} from './rng.js'

export interface SineModes {
  offset: number
  amplitudes: number[]
  wavenumbers: number[]
  phases: number[]
}

export interface SineModeOptions {
  /** Number of sines (PDEBench: 2). */
  modes?: number
  /** Largest integer wavenumber (PDEBench: 4). */
  kMax?: number
  /** Largest amplitude (uniform in [0, aMax)). */
  aMax?: number
}

export function randomSineModes(rng: Rng, options: SineModeOptions = {}): SineModes {
  const modes = options.modes ?? 2
  const kMax = options.kMax ?? 4
  const aMax = options.aMax ?? 1
  const m: SineModes = {offset: 0, amplitudes: [], wavenumbers: [], phases: []}
  for (let i = 0; i < modes; i++) {
    m.amplitudes.push(rng.uniform(0, aMax))
    m.wavenumbers.push(rng.int(1, kMax))
    m.phases.push(rng.uniform(0, 2 * Math.PI))
  }
  return m
}

/** Cell centres of a uniform periodic grid on [0, 1): (i + 1/2) / nx. */
export function cellCentres(nx: number): Float64Array {
  return Float64Array.from({length: nx}, (_, i) => (i + 0.5) / nx)
}

/**
 * Exact averages over each cell of u(x) = offset + sum_j A_j sin(2 pi k_j (x - shift) + phi_j).
 * The average of sin over a cell of width h is its centre value times sin(pi k h) / (pi k h).
 */
export function sineCellAverages(modes: SineModes, nx: number, shift = 0, out = new Float64Array(nx)): Float64Array {
  const h = 1 / nx
  out.fill(modes.offset)
  for (let j = 0; j < modes.amplitudes.length; j++) {
    const k = modes.wavenumbers[j]
    const z = Math.PI * k * h
    const factor = modes.amplitudes[j] * (Math.sin(z) / z)
    const w = 2 * Math.PI * k
    for (let i = 0; i < nx; i++) out[i] += factor * Math.sin(w * ((i + 0.5) * h - shift) + modes.phases[j])
  }
  return out
}

/** Point values of the same function (for checks against the exact solution). */
export function sinePointValue(modes: SineModes, x: number): number {
  let u = modes.offset
  for (let j = 0; j < modes.amplitudes.length; j++) u += modes.amplitudes[j] * Math.sin(2 * Math.PI * modes.wavenumbers[j] * x + modes.phases[j])
  return u
}
