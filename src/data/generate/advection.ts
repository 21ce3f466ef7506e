/**
 * 1D linear advection u_t + beta u_x = 0, periodic on [0, 1): the exact solution is the
 * initial condition shifted by beta t, evaluated as exact cell averages at each output time.
 */
import {type SineModes, sineCellAverages} from './initial.js'

export interface AdvectionOptions {
  nx: number
  /** Output times (any order; frame k is at times[k]). */
  times: ArrayLike<number>
  beta: number
}

/** Frames [T, X] (row-major) of cell averages. */
export function solveAdvection(modes: SineModes, options: AdvectionOptions): Float64Array {
  const {nx, times, beta} = options
  const out = new Float64Array(times.length * nx)
  for (let k = 0; k < times.length; k++) sineCellAverages(modes, nx, beta * times[k], out.subarray(k * nx, (k + 1) * nx))
  return out
}
