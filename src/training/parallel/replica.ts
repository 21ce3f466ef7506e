/** The math of one replica's share of a step: the same in a worker and on the main thread. */
import * as tf from '@tensorflow/tfjs'

import type {ParamStore} from '../params.js'
import {Rng} from '../rng.js'
import type {StageSpec} from '../stages/types.js'
import {GradientAccumulator} from '../step.js'
import type {StepRequest, WorkerMessage} from './protocol.js'

/** What a recipe builds in a worker: the stage's spec and a function that frees its models. */
export interface ReplicaBuild {
  spec: StageSpec
  free: () => void
}

/**
 * Runs micro-batches into `acc` (inputs freed after each backward), micro-batch m drawing from
 * rngOf(m); returns the items seen. injectNaN poisons the first loss (the NaN drill).
 */
export async function runMicroBatches(spec: StageSpec, acc: GradientAccumulator, batches: number[][], rngOf: (m: number) => Rng, injectNaN = false): Promise<number> {
  let items = 0
  for (const [m, batch] of batches.entries()) {
    const closure = spec.trainLoss(batch, rngOf(m))
    try {
      await acc.addAsync(injectNaN && m === 0 ? () => tf.mul(closure.fn(), Number.NaN) as tf.Scalar : closure.fn)
    } finally {
      closure.dispose()
    }
    items += batch.length
  }
  return items
}

/** Every parameter in store order, concatenated into one array. */
export async function flattenParams(store: ParamStore): Promise<Float32Array> {
  const entries = store.entries()
  const data = await Promise.all(entries.map(([, v]) => v.data() as Promise<Float32Array>))
  const out = new Float32Array(data.reduce((n, d) => n + d.length, 0))
  let at = 0
  for (const d of data) {
    out.set(d, at)
    at += d.length
  }
  return out
}

export function loadFlatParams(store: ParamStore, flat: Float32Array): void {
  let at = 0
  tf.tidy(() => {
    for (const [, v] of store.entries()) {
      v.assign(tf.tensor(flat.subarray(at, at + v.size), v.shape, 'float32'))
      at += v.size
    }
  })
}

/** A worker's step: parameters in, summed gradients out (zeros + present = 0 where none flowed). */
export async function replicaStep(spec: StageSpec, r: StepRequest): Promise<Extract<WorkerMessage, {type: 'result'}>> {
  loadFlatParams(spec.store, r.params)
  const acc = new GradientAccumulator(spec.store)
  const items = await runMicroBatches(spec, acc, r.batches, (m) => new Rng(r.seeds[m]))
  const {lossSum, count, grads} = acc.takeSums()
  const entries = spec.store.entries()
  const out = new Float32Array(r.params.length)
  const present = new Uint8Array(entries.length)
  let at = 0
  try {
    for (const [i, [name, v]] of entries.entries()) {
      const g = grads.get(name)
      if (g) {
        out.set((await g.data()) as Float32Array, at)
        present[i] = 1
      }
      at += v.size
    }
  } finally {
    tf.dispose([...grads.values()])
  }
  return {type: 'result', id: r.id, grads: out, present, lossSum, count, items}
}
