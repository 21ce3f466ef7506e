/**
 * PDEBench's random initial conditions: a constant plus a sum of a few sines with random
 * amplitudes, phases and integer wavenumbers on the periodic domain [0, 1). Evaluated as exact cell
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
  /** Wavenumber draws (PDEBench num_choise_k: 2). */
  modes?: number
  /** Wavenumber slots 1..kMax (PDEBench k_tot: 4). */
  kMax?: number
  /** Largest amplitude (uniform in [0, aMax)). */
  aMax?: number
}

/**
 * PDEBench's `init_multi`: every slot k = 1..kMax gets an amplitude and a phase; `modes` draws
 * (with replacement) pick the slots that oscillate, with wavenumber k times the times it was
 * drawn. A slot not drawn has wavenumber 0, so it adds the constant A sin(phi): the field's mean.
 * Burgers and advection conserve that mean, so fields keep their size while the waves decay:
 * with a zero mean, a small high-wavenumber start decays to ~1e-6 of itself by t = 2 at
 * nu = 0.01, and every relative metric on those frames is noise.
 */
export function randomSineModes(rng: Rng, options: SineModeOptions = {}): SineModes {
  const draws = options.modes ?? 2
  const kMax = options.kMax ?? 4
  const aMax = options.aMax ?? 1
  const times = new Array<number>(kMax).fill(0)
  for (let i = 0; i < draws; i++) times[rng.int(1, kMax) - 1]++
  const m: SineModes = {offset: 0, amplitudes: [], wavenumbers: [], phases: []}
  for (let k = 1; k <= kMax; k++) {
    const amplitude = rng.uniform(0, aMax)
    const phase = rng.uniform(0, 2 * Math.PI)
    if (times[k - 1] === 0) {
      m.offset += amplitude * Math.sin(phase)
    } else {
      m.amplitudes.push(amplitude)
      m.wavenumbers.push(k * times[k - 1])
      m.phases.push(phase)
    }
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
