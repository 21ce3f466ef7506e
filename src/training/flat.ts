/**
 * The parameters of a store laid end to end (store order): the optimizer, clipping and the EMA run
 * once over one flat buffer instead of once per variable (a few kernels per step instead of ~15
 * per parameter tensor). Checkpoints keep one named array per parameter, so the layout only
 * converts between the flat buffer and the named pieces.
 * On webgpu the concat and the split are hand-written programs (seven tensors per dispatch, where
 * tfjs's split is one dispatch per variable), and the flat parameters the optimizer wrote are kept
 * for its next step instead of being concatenated again.
 */
import * as tf from '@tensorflow/tfjs'

import type {NamedArray} from './checkpoint.js'
import {useFusedKernels} from './fused.js'
import type {Grads} from './optim.js'
import type {ParamStore} from './params.js'
import {concatProgram, splitProgram} from './webgpu-programs/optim.js'
import {useWebgpuPrograms} from './webgpu-programs/program.js'

/** The flat parameters last written into the variables, with the data each variable got. */
interface Adopted {
  flat: tf.Tensor1D
  dataIds: tf.DataId[]
}

export class FlatLayout {
  readonly names: string[]
  readonly vars: tf.Variable[]
  readonly offsets: number[]
  readonly sizes: number[]
  readonly size: number
  private adopted: Adopted | null = null

  constructor(store: ParamStore) {
    const entries = store.entries()
    this.names = entries.map(([n]) => n)
    this.vars = entries.map(([, v]) => v)
    this.sizes = this.vars.map((v) => v.size)
    this.offsets = []
    let at = 0
    for (const s of this.sizes) {
      this.offsets.push(at)
      at += s
    }
    this.size = at
  }

  /** One flat tensor of `parts` (store order); rank-1 parts need no reshape (one kernel fewer each). */
  concat(parts: tf.Tensor[]): tf.Tensor1D {
    if (useWebgpuPrograms()) return concatProgram(parts)
    return tf.tidy(() => tf.concat(parts.map((p) => (p.rank === 1 ? p : p.reshape([-1]))) as tf.Tensor1D[]))
  }

  /**
   * The gradients as one flat tensor (missing ones as zeros), divided by `divisor` (the
   * micro-batch count: on webgpu the concat program divides as it copies).
   */
  concatGrads(grads: Grads, divisor = 1): tf.Tensor1D {
    return tf.tidy(() => {
      const parts = this.names.map((n, i) => grads.get(n) ?? tf.zeros([this.sizes[i]]))
      if (useWebgpuPrograms()) return concatProgram(parts, divisor)
      const flat = this.concat(parts)
      return divisor === 1 ? flat : tf.div(flat, divisor)
    })
  }

  /**
   * The gradients as one flat buffer: a JS array where the update runs in JS (wasm, cpu), else one
   * concat; divided by `divisor` (only the concat takes one: on webgpu the accumulator leaves sums).
   */
  flatGrads(grads: Grads, divisor = 1): Float32Array | tf.Tensor1D {
    return useFusedKernels() ? this.readGrads(grads) : this.concatGrads(grads, divisor)
  }

  /** The current parameters as one flat buffer, the same way. */
  flatParams(): Float32Array | tf.Tensor1D {
    return useFusedKernels() ? this.readParams() : this.paramsTensor()
  }

  /**
   * The current parameters as one flat tensor (the caller's to dispose): the one last adopted while
   * every variable still holds the piece it got from it (an assign elsewhere, such as a checkpoint
   * import, gives a variable new data), else a concat.
   */
  paramsTensor(): tf.Tensor1D {
    const a = this.adopted
    if (a && useWebgpuPrograms() && this.vars.every((v, i) => v.dataId === a.dataIds[i])) return a.flat.clone()
    return this.concat(this.vars)
  }

  /** assignFrom(flat), keeping `flat` on webgpu as the flat parameters for paramsTensor(). */
  adopt(flat: tf.Tensor1D): void {
    this.assignFrom(flat)
    this.forget()
    if (useWebgpuPrograms()) this.adopted = {flat: tf.keep(flat.clone()), dataIds: this.vars.map((v) => v.dataId)}
  }

  /** Frees the adopted flat parameters. */
  forget(): void {
    this.adopted?.flat.dispose()
    this.adopted = null
  }

  /** The gradients as one flat array, read synchronously (CPU-side backends). */
  readGrads(grads: Grads): Float32Array {
    const out = new Float32Array(this.size)
    this.names.forEach((n, i) => {
      const g = grads.get(n)
      if (g) out.set(g.dataSync() as Float32Array, this.offsets[i])
    })
    return out
  }

  /** The current parameters as one flat array, read synchronously. */
  readParams(): Float32Array {
    const out = new Float32Array(this.size)
    this.vars.forEach((v, i) => out.set(v.dataSync() as Float32Array, this.offsets[i]))
    return out
  }

  /**
   * Writes a flat tensor back into the variables: one split, a reshape per rank>1 variable (on
   * webgpu a program writing seven variables per dispatch).
   */
  assignFrom(flat: tf.Tensor1D, targets: tf.Variable[] = this.vars): void {
    tf.tidy(() => {
      if (useWebgpuPrograms()) {
        const parts = splitProgram(flat, targets.map((v) => v.shape))
        targets.forEach((v, i) => v.assign(parts[i]))
        return
      }
      const parts = tf.split(flat, this.sizes)
      targets.forEach((v, i) => v.assign(v.rank === 1 ? parts[i] : parts[i].reshape(v.shape)))
    })
  }

  /** Writes a flat array back into the variables (no kernels: each is a fresh upload). */
  assignFromArray(flat: Float32Array, targets: tf.Variable[] = this.vars): void {
    tf.tidy(() => targets.forEach((v, i) => v.assign(tf.tensor(flat.subarray(this.offsets[i], this.offsets[i] + this.sizes[i]), v.shape, 'float32'))))
  }

  /** Named per-parameter arrays (the checkpoint format) cut from a flat array. */
  toNamed(flat: Float32Array, prefix: string): NamedArray[] {
    return this.names.map((n, i) => ({
      name: prefix + n,
      shape: [...this.vars[i].shape],
      dtype: 'float32' as const,
      data: flat.slice(this.offsets[i], this.offsets[i] + this.sizes[i]),
    }))
  }

  /** The flat array from named per-parameter arrays; `missing(name)` says what to throw. */
  fromNamed(arrays: NamedArray[], prefix: string, missing: (name: string) => Error): Float32Array {
    const byName = new Map(arrays.map((a) => [a.name, a]))
    const out = new Float32Array(this.size)
    this.names.forEach((n, i) => {
      const a = byName.get(prefix + n)
      if (!a || a.data.length !== this.sizes[i]) throw missing(prefix + n)
      out.set(a.data as Float32Array, this.offsets[i])
    })
    return out
  }
}
