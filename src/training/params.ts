/**
 * Named parameters. tfjs variable names must be globally unique per process, so tfjs gets
 * auto-generated names and we keep our own stable, hierarchical names ("op/level0/block1/attn/qkv/w")
 * here: checkpoints, optimizer slots and EMA shadows are all keyed by them.
 */
import * as tf from '@tensorflow/tfjs'

import {ExitCode, UserError} from '../util/errors.js'
import type {NamedArray} from './checkpoint.js'
import type {Rng} from './rng.js'

export type Init =
  | {kind: 'zeros'}
  | {kind: 'ones'}
  | {kind: 'const'; value: number}
  | {kind: 'uniform'; limit: number}
  | {kind: 'normal'; std: number}

export class ParamStore {
  private readonly vars = new Map<string, tf.Variable>()

  constructor(private readonly rng: Rng) {}

  /** Creates a trainable parameter; initial values come from the store's seeded RNG. */
  add(name: string, shape: number[], init: Init): tf.Variable {
    if (this.vars.has(name)) throw new Error(`parameter ${name} defined twice`)
    const size = shape.reduce((a, b) => a * b, 1)
    let data: Float32Array
    switch (init.kind) {
      case 'zeros':
        data = new Float32Array(size)
        break
      case 'ones':
        data = new Float32Array(size).fill(1)
        break
      case 'const':
        data = new Float32Array(size).fill(init.value)
        break
      case 'uniform':
        data = this.rng.fillUniform(size, -init.limit, init.limit)
        break
      case 'normal':
        data = this.rng.fillNormal(size, init.std)
        break
    }
    const v = tf.variable(tf.tensor(data, shape, 'float32'), true)
    this.vars.set(name, v)
    return v
  }

  get(name: string): tf.Variable {
    const v = this.vars.get(name)
    if (!v) throw new Error(`no parameter ${name}`)
    return v
  }

  has(name: string): boolean {
    return this.vars.has(name)
  }

  names(): string[] {
    return [...this.vars.keys()]
  }

  entries(): [string, tf.Variable][] {
    return [...this.vars.entries()]
  }

  variables(): tf.Variable[] {
    return [...this.vars.values()]
  }

  /** Number of scalar parameters. */
  count(): number {
    let n = 0
    for (const v of this.vars.values()) n += v.size
    return n
  }

  /** Copies every parameter out (for checkpoints). */
  exportArrays(prefix = ''): NamedArray[] {
    return this.entries().map(([name, v]) => ({
      name: prefix + name,
      shape: [...v.shape],
      dtype: 'float32' as const,
      data: v.dataSync() as Float32Array,
    }))
  }

  /** exportArrays() with asynchronous reads (required on webgpu). */
  exportArraysAsync(prefix = ''): Promise<NamedArray[]> {
    return readArrays(this.entries(), prefix)
  }

  /**
   * Loads parameters by name. Every parameter of the store must be present with the same shape:
   * a checkpoint from another architecture is a UserError, not a silent partial load.
   */
  importArrays(arrays: NamedArray[], prefix = '', source = 'checkpoint'): void {
    const byName = new Map(arrays.map((a) => [a.name, a]))
    for (const [name, v] of this.vars) {
      const a = byName.get(prefix + name)
      const shapeOk = a && a.shape.length === v.shape.length && a.shape.every((s, i) => s === v.shape[i])
      if (!a || !shapeOk) {
        throw new UserError(
          `The ${source} does not match the model: parameter ${prefix + name} ${a ? `has shape [${a.shape}] instead of [${v.shape}]` : 'is missing'}.`,
          {
            code: 'CHECKPOINT_MISMATCH',
            hint: 'The config (latent.dim, latent.tokens, operator.pdet.*) must match the run that wrote the checkpoint; use a new --run-dir to start over.',
            exitCode: ExitCode.CHECK_FAILED,
          },
        )
      }
      v.assign(tf.tensor(a.data, a.shape, 'float32'))
    }
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose()
    this.vars.clear()
  }
}

/** Copies named variables out with asynchronous reads (every backend; required on webgpu). */
export async function readArrays(entries: Array<[string, tf.Variable]>, prefix = ''): Promise<NamedArray[]> {
  const data = await Promise.all(entries.map(([, v]) => v.data() as Promise<Float32Array>))
  return entries.map(([name, v], i) => ({name: prefix + name, shape: [...v.shape], dtype: 'float32' as const, data: data[i]}))
}
