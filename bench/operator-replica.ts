/**
 * The benchmark's operator step as a stage spec, buildable on the main thread and in a replica
 * worker alike: the 32-dim operator of bench/training.ts over BATCH fixed random pairs; a
 * micro-batch is a set of item indices (its tensors are built per step, as training does).
 */
import * as tf from '@tensorflow/tfjs'

import {trainingLoss} from '../src/training/losses.js'
import {LatentOperator} from '../src/training/models/operator.js'
import type {ReplicaBuild} from '../src/training/parallel/index.js'
import {ParamStore} from '../src/training/params.js'
import {Rng} from '../src/training/rng.js'

export interface BenchOperatorArgs {
  config: {inputDim: number; hiddenDim: number; depths: number[]; groupSize: number; numHeads: number; mlpRatio: number; dropout: number; tokens: number}
  items: number
}

export function buildBenchOperator(a: BenchOperatorArgs): ReplicaBuild & {op: LatentOperator} {
  const store = new ParamStore(new Rng(0))
  const op = new LatentOperator(store, a.config)
  const size = a.config.tokens * a.config.inputDim
  const rng = new Rng(1)
  const z0 = rng.fillNormal(a.items * size)
  const z1 = rng.fillNormal(a.items * size)
  const gather = (src: Float32Array, idx: number[]) => {
    const out = new Float32Array(idx.length * size)
    idx.forEach((i, b) => out.set(src.subarray(i * size, (i + 1) * size), b * size))
    return tf.tensor3d(out, [idx.length, a.config.tokens, a.config.inputDim])
  }
  return {
    op,
    spec: {
      stage: 'operator', store, trainItems: a.items, valItems: 0,
      trainLoss(idx, r) {
        const x = gather(z0, idx)
        const y = gather(z1, idx)
        return {fn: () => trainingLoss(op.forward(x, 0.1, {training: true, rng: r}), y), dispose: () => tf.dispose([x, y])}
      },
      valLoss: () => 0,
      dispose: () => undefined,
    },
    free: () => (op.dispose(), store.dispose()),
  }
}
