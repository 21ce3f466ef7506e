/** A plain per-row MLP (Linear -> GELU -> ... -> Linear) used by several small models. */
import type * as tf from '@tensorflow/tfjs'

import {type Ctx, createLinear, dropout, gelu, type Linear} from '../layers.js'
import type {ParamStore} from '../params.js'

export class Mlp {
  readonly layers: Linear[] = []

  /** `numLayers` linear layers: in -> hidden x (numLayers-1) -> out. The last is scaled by `outScale` at init. */
  constructor(store: ParamStore, name: string, inDim: number, hidden: number, outDim: number, numLayers: number, private readonly p = 0, outScale = 1) {
    const dims = [inDim, ...new Array<number>(Math.max(0, numLayers - 1)).fill(hidden), outDim]
    for (let i = 0; i < dims.length - 1; i++) {
      this.layers.push(createLinear(store, `${name}/fc${i}`, dims[i], dims[i + 1], i === dims.length - 2 ? outScale : 1))
    }
  }

  apply(x: tf.Tensor2D, ctx: Ctx = {training: false}): tf.Tensor2D {
    let h = x
    this.layers.forEach((l, i) => {
      h = l.apply(h)
      if (i < this.layers.length - 1) h = dropout(gelu(h), this.p, ctx)
    })
    return h
  }

  /** Floats kept for backward per input row. */
  activationFloatsPerRow(): number {
    return this.layers.reduce((s, l, i) => s + l.inDim + (i < this.layers.length - 1 ? l.outDim * 4 : l.outDim), 0)
  }
}
