/** Stage `autoencoder`: reconstruction of single frames, u -> decode(encode(u)). */
import * as tf from '@tensorflow/tfjs'

import {type LossWeights, trainingLoss} from '../losses.js'
import type {GridAutoencoder} from '../models/autoencoder.js'
import {frameAccess, gatherFrames, type TrainingData, type TrajectoryAccess} from '../data.js'
import {readScalar} from '../step.js'
import {streamedItems} from './latent-items.js'
import type {StageSpec} from './types.js'

export function autoencoderStage(ae: GridAutoencoder, data: TrainingData, lambdas: LossWeights): StageSpec {
  const F = data.frames
  const shape = (b: number): number[] => [b, ...data.gridShape, data.channels]
  const train = frameAccess(data, data.train)
  const val = frameAccess(data, data.val)
  const frames = (access: TrajectoryAccess, indices: number[]): tf.Tensor =>
    tf.tensor(gatherFrames(access, indices.map((i) => ({pos: Math.floor(i / F), frame: i % F})), data.frameSize), shape(indices.length))
  return {
    stage: 'autoencoder',
    store: ae.store,
    trainItems: data.train.length * F,
    valItems: data.val.length * F,
    ...streamedItems(train, F),
    trainLoss(indices, rng) {
      const x = frames(train, indices)
      const ctx = {training: true, rng}
      return {fn: () => trainingLoss(ae.decode(ae.encode(x, ctx), ctx), x, lambdas), dispose: () => x.dispose()}
    },
    async valLoss(indices) {
      const x = frames(val, indices)
      try {
        return await readScalar(() => trainingLoss(ae.decode(ae.encode(x)), x, lambdas))
      } finally {
        x.dispose()
      }
    },
    dispose: () => undefined,
  }
}
