/**
 * Grid autoencoder: a field u [B, ...grid, C] <-> latent tokens [B, tokens, dim].
 * Encoder: patchify by reshape (1-D: X/tokens points per patch; 2-D: square patches), append
 * Fourier features of each patch's centre coordinate, per-token MLP to `dim`, plus a linear map
 * of the patch.
 * Decoder: per-token MLP on [z, Fourier features] back to the patch's values, plus a linear map
 * of z; unpatchify. Latents are centred per token (mean over dims zero), the space the
 * operator's LayerNorm update lives in.
 * The linear paths: with dim >= the patch's values, encode-decode can be exact through them, and
 * the MLPs learn only what is nonlinear. Without them a one-hidden-layer MLP pair reconstructs
 * Burgers frames to ~3% after minutes of CPU training, worse than the one-step change the
 * operator is meant to predict (persistence: ~3%), so no model could beat persistence.
 * Trained with a reconstruction loss and saved, so training and evaluation latents come from the
 * same weights.
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../../util/errors.js'
import {type Ctx, createLinear, type Linear} from '../layers.js'
import type {ParamStore} from '../params.js'
import {Mlp} from './mlp.js'
import type {ModelInfo} from './types.js'

export interface AutoencoderOptions {
  /** Spatial shape of one field: [X] or [H, W]. */
  gridShape: number[]
  channels: number
  /** latent.tokens */
  tokens: number
  /** latent.dim */
  dim: number
  hiddenDim: number
  /** Linear layers per MLP (default 3). */
  numLayers?: number
  /** Fourier frequencies per coordinate axis: 1, 2, 4, ... (default 4). */
  fourierFeatures?: number
}

export class GridAutoencoder implements ModelInfo {
  readonly kind = 'autoencoder'
  readonly patch: number[]
  readonly patchSize: number
  private readonly tokenGrid: number[]
  private readonly fourier: tf.Tensor2D
  private readonly fourierDim: number
  private readonly encoderMlp: Mlp
  private readonly decoderMlp: Mlp
  private readonly encoderLinear: Linear
  private readonly decoderLinear: Linear

  constructor(readonly store: ParamStore, readonly options: AutoencoderOptions, private readonly prefix = 'autoencoder') {
    const {gridShape, tokens, channels} = options
    const nd = gridShape.length
    const perAxis = nd === 1 ? tokens : Math.round(Math.sqrt(tokens))
    if ((nd !== 1 && nd !== 2) || perAxis ** nd !== tokens || gridShape.some((g) => g % perAxis !== 0)) {
      throw new UserError(
        `latent.tokens ${tokens} does not tile the grid [${gridShape}]: ${nd === 2 ? 'a 2-D grid needs a square token count whose side divides both axes' : 'the grid length must be a multiple of the token count'}.`,
        {code: 'TRAIN_MODEL_CONFIG', hint: 'Pick latent.tokens so the grid splits into equal patches.', exitCode: ExitCode.CHECK_FAILED},
      )
    }
    this.tokenGrid = gridShape.map(() => perAxis)
    this.patch = gridShape.map((g) => g / perAxis)
    this.patchSize = this.patch.reduce((a, b) => a * b, 1) * channels
    const nf = options.fourierFeatures ?? 4
    this.fourierDim = 2 * nf * nd
    this.fourier = tf.keep(this.fourierTable(nf))
    const layers = options.numLayers ?? 3
    this.encoderMlp = new Mlp(store, `${prefix}/encoder`, this.patchSize + this.fourierDim, options.hiddenDim, options.dim, layers)
    this.decoderMlp = new Mlp(store, `${prefix}/decoder`, options.dim + this.fourierDim, options.hiddenDim, this.patchSize, layers)
    this.encoderLinear = createLinear(store, `${prefix}/encoder/linear`, this.patchSize, options.dim)
    this.decoderLinear = createLinear(store, `${prefix}/decoder/linear`, options.dim, this.patchSize)
  }

  /** sin/cos(2^k * pi * x) of each token's centre coordinate in [0, 1): [tokens, fourierDim]. */
  private fourierTable(nf: number): tf.Tensor2D {
    const {tokens} = this.options
    const out = new Float32Array(tokens * this.fourierDim)
    for (let t = 0; t < tokens; t++) {
      const idx = this.tokenGrid.length === 1 ? [t] : [Math.floor(t / this.tokenGrid[1]), t % this.tokenGrid[1]]
      let j = 0
      idx.forEach((i, axis) => {
        const x = (i + 0.5) / this.tokenGrid[axis]
        for (let k = 0; k < nf; k++) {
          out[t * this.fourierDim + j++] = Math.sin(2 ** k * Math.PI * x)
          out[t * this.fourierDim + j++] = Math.cos(2 ** k * Math.PI * x)
        }
      })
    }
    return tf.tensor2d(out, [tokens, this.fourierDim])
  }

  /** [B, ...grid, C] -> [B*tokens, patchSize] */
  private patchify(u: tf.Tensor): tf.Tensor2D {
    const b = u.shape[0]
    const {channels: c, tokens} = this.options
    if (this.patch.length === 1) return u.reshape([b * tokens, this.patchSize]) as tf.Tensor2D
    const [th, tw] = this.tokenGrid
    const [ph, pw] = this.patch
    const x = tf.transpose(u.reshape([b, th, ph, tw, pw, c]), [0, 1, 3, 2, 4, 5])
    return x.reshape([b * tokens, this.patchSize]) as tf.Tensor2D
  }

  private unpatchify(p: tf.Tensor2D, b: number): tf.Tensor {
    const {channels: c, gridShape} = this.options
    if (this.patch.length === 1) return p.reshape([b, gridShape[0], c])
    const [th, tw] = this.tokenGrid
    const [ph, pw] = this.patch
    return tf.transpose(p.reshape([b, th, tw, ph, pw, c]), [0, 1, 3, 2, 4, 5]).reshape([b, ...gridShape, c])
  }

  private withFourier(x: tf.Tensor2D, b: number): tf.Tensor2D {
    return tf.concat([x, tf.tile(this.fourier, [b, 1])], 1)
  }

  encode(u: tf.Tensor, ctx: Ctx = {training: false}): tf.Tensor3D {
    const expected = [...this.options.gridShape, this.options.channels]
    if (u.rank !== expected.length + 1 || expected.some((s, i) => u.shape[i + 1] !== s)) {
      throw new Error(`autoencoder expects [B, ${expected}], got [${u.shape}]`)
    }
    const b = u.shape[0]
    const patches = this.patchify(u)
    const raw = tf.add(this.encoderMlp.apply(this.withFourier(patches, b), ctx), this.encoderLinear.apply(patches))
    // Centred per token: the operator's update is a LayerNorm output, whose mean over the latent
    // dims is zero, so any part of z along (1, ..., 1) would be out of its reach.
    const z = tf.sub(raw, tf.mean(raw, -1, true))
    return z.reshape([b, this.options.tokens, this.options.dim])
  }

  decode(z: tf.Tensor3D, ctx: Ctx = {training: false}): tf.Tensor {
    const b = z.shape[0]
    const flat = z.reshape([b * this.options.tokens, this.options.dim]) as tf.Tensor2D
    return this.unpatchify(tf.add(this.decoderMlp.apply(this.withFourier(flat, b), ctx), this.decoderLinear.apply(flat)) as tf.Tensor2D, b)
  }

  paramCount(): number {
    return this.store.names().filter((n) => n.startsWith(this.prefix + '/')).reduce((s, n) => s + this.store.get(n).size, 0)
  }

  activationBytes(batch: number): number {
    const rows = batch * this.options.tokens
    return 4 * rows * (this.encoderMlp.activationFloatsPerRow() + this.decoderMlp.activationFloatsPerRow() + 3 * this.patchSize + this.options.dim)
  }

  dispose(): void {
    this.fourier.dispose()
  }
}
