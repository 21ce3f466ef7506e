/**
 * Steady prior: a small per-token residual MLP that maps a latent state z_t to the latent of the
 * trajectory's late-time (quasi-steady) state, z_ss = z_t + MLP(z_t). Trained on pairs
 * (z_t, z_T) from the latent cache with the same loss as the operator. At inference it gives a
 * cheap long-horizon estimate that long rollouts can be compared against (drift detection), and
 * an initial guess for steady problems. Optional stage (steady_prior).
 */
import * as tf from '@tensorflow/tfjs'

import type {Ctx} from '../layers.js'
import type {ParamStore} from '../params.js'
import {Mlp} from './mlp.js'
import type {ModelInfo} from './types.js'

export interface SteadyPriorOptions {
  latentDim: number
  hiddenDim: number
  numLayers: number
  dropout?: number
}

export class SteadyPrior implements ModelInfo {
  readonly kind = 'steady_prior'
  private readonly mlp: Mlp

  constructor(readonly store: ParamStore, readonly options: SteadyPriorOptions, private readonly prefix = 'steady_prior') {
    // The last layer starts small so the untrained prior is close to the identity.
    this.mlp = new Mlp(store, `${prefix}/mlp`, options.latentDim, options.hiddenDim, options.latentDim, Math.max(2, options.numLayers), options.dropout ?? 0, 0.1)
  }

  forward(z: tf.Tensor3D, ctx: Ctx = {training: false}): tf.Tensor3D {
    const [b, t, d] = z.shape
    return tf.add(z, this.mlp.apply(z.reshape([b * t, d]) as tf.Tensor2D, ctx).reshape([b, t, d])) as tf.Tensor3D
  }

  paramCount(): number {
    return this.store.names().filter((n) => n.startsWith(this.prefix + '/')).reduce((s, n) => s + this.store.get(n).size, 0)
  }

  activationBytes(batch: number, tokens = 1): number {
    return 4 * batch * tokens * (this.mlp.activationFloatsPerRow() + 2 * this.options.latentDim)
  }
}
