import * as tf from '@tensorflow/tfjs'

import {type BackendName, resolveBackend} from '../../../src/training/backend.js'
import type {ParamStore} from '../../../src/training/params.js'
import {Rng} from '../../../src/training/rng.js'
import {lossAndGrads} from '../../../src/training/step.js'

export const BACKENDS: BackendName[] = ['wasm', 'cpu']

export async function useBackend(name: BackendName): Promise<void> {
  const r = await resolveBackend(name)
  if (r.name !== name || tf.getBackend() !== name) throw new Error(`backend ${name} did not activate`)
}

export function randn(rng: Rng, shape: number[], std = 1): tf.Tensor {
  return tf.tensor(rng.fillNormal(shape.reduce((a, b) => a * b, 1), std), shape)
}

/**
 * Directional finite-difference check: compares g . d (autodiff) with
 * (L(p + h d) - L(p - h d)) / 2h along a random unit direction d over all parameters.
 * Also returns how many parameters received a non-zero gradient.
 */
export function gradCheck(store: ParamStore, lossFn: () => tf.Scalar, seed = 7, h = 1e-2): {analytic: number; numeric: number; nonZero: number; total: number} {
  const rng = new Rng(seed)
  const entries = store.entries()
  const dirs = entries.map(([, v]) => tf.tensor(rng.fillNormal(v.size), v.shape))
  const norm = Math.sqrt(dirs.reduce((s, d) => s + tf.sum(tf.square(d)).dataSync()[0], 0))
  const units = dirs.map((d) => tf.div(d, norm))
  const {loss, grads} = lossAndGrads(store, lossFn)
  loss.dispose()
  let analytic = 0
  let nonZero = 0
  entries.forEach(([name], i) => {
    const g = grads.get(name)
    if (!g) return
    analytic += tf.sum(tf.mul(g, units[i])).dataSync()[0]
    if (tf.max(tf.abs(g)).dataSync()[0] > 0) nonZero += 1
  })
  const originals = entries.map(([, v]) => v.clone())
  const evalAt = (sign: number): number => {
    entries.forEach(([, v], i) => v.assign(tf.add(originals[i], tf.mul(units[i], sign * h))))
    return tf.tidy(() => lossFn().dataSync()[0])
  }
  const plus = evalAt(1)
  const minus = evalAt(-1)
  entries.forEach(([, v], i) => v.assign(originals[i]))
  tf.dispose([...dirs, ...units, ...originals, ...grads.values()])
  return {analytic, numeric: (plus - minus) / (2 * h), nonZero, total: entries.length}
}
