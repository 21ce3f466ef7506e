/**
 * Builds every model of a config and times real training steps on one synthetic batch per
 * enabled stage, with the training engine (ParamStore, Optimizer, trainStep) on the local
 * backend. Loaded lazily: it imports tfjs.
 */
import * as tf from '@tensorflow/tfjs'

import {resolveArchitecture, resolveStage, STAGES, type StageName, type UpsConfig} from '../config/index.js'
import {resolveBackend, type BackendRequest} from '../training/backend.js'
import {trainingLoss, mse} from '../training/losses.js'
import {ConsistencyStudent, GridAutoencoder, LatentOperator, ResidualCorrector, SteadyPrior} from '../training/models/index.js'
import {createOptimizer, type Optimizer} from '../training/optim.js'
import {ParamStore} from '../training/params.js'
import {Rng} from '../training/rng.js'
import {trainStepAsync} from '../training/step.js'
import type {DataShape} from './estimate-math.js'
import {enabledStagesOf} from './stages.js'

/** Steps run before timing starts (the "two real training steps"). */
export const WARMUP_STEPS = 2

export interface ModelReport {
  stage: StageName
  kind: string
  params: number
  /** float32 activations kept for backward at the stage's batch size. */
  activationBytes: number
  /** weights + gradients + Adam moments (+ EMA) + activations. */
  memoryBytes: number
  /** Approximate FLOPs of one optimizer step (matMuls: forward x 3 for forward + backward). */
  flopsPerStep: number
  batchSize: number
}

export interface StageMeasurement {
  stage: StageName
  batchSize: number
  /** Wall time of each step, in order (the first includes kernel set-up). */
  stepMs: number[]
  /** The figure used: the last step. */
  measuredMs: number
  flopsPerStep: number
  /** Achieved GFLOP/s of the measured step. */
  gflops: number
}

export interface MeasureResult {
  backend: string
  models: ModelReport[]
  stages: StageMeasurement[]
}

export interface MeasureOptions {
  /** Time `steps` training steps per enabled stage (false: build models and count only). */
  measure: boolean
  steps?: number
  backend?: BackendRequest
  /** Monotonic milliseconds (performance.now). */
  now: () => number
  onProgress?: (line: string) => void
}

interface StageModel {
  report: Omit<ModelReport, 'memoryBytes'>
  /** One micro-batch loss closure on fixed synthetic data. */
  lossFn: () => tf.Scalar
  store: ParamStore
  dispose(): void
}

/** Flops of one forward pass through per-row MLPs with `params` weights over `rows` rows. */
const mlpFlops = (params: number, rows: number) => 2 * params * rows

function buildStage(stage: StageName, config: UpsConfig, shape: DataShape, rng: Rng): StageModel {
  const arch = resolveArchitecture(config)
  const {dim, tokens} = arch.latent
  const b = resolveStage(config, stage).batch_size
  const store = new ParamStore(new Rng(1234 + STAGES.indexOf(stage)))
  const randn = (s: number[]) => tf.keep(tf.tensor(rng.fillNormal(s.reduce((a, c) => a * c, 1)), s))
  const held: tf.Tensor[] = []
  const keep = <T extends tf.Tensor>(t: T): T => {
    held.push(t)
    return t
  }
  const corrOpts = {latentDim: dim, hiddenDim: arch.diffusion.hidden_dim, numLayers: arch.diffusion.num_layers, timeEmbedDim: arch.diffusion.time_embed_dim, dropout: arch.diffusion.dropout}
  const done = (kind: string, params: number, activationBytes: number, flopsPerStep: number, lossFn: () => tf.Scalar, extra: () => void = () => {}): StageModel => ({
    report: {stage, kind, params, activationBytes, flopsPerStep, batchSize: b},
    lossFn,
    store,
    dispose() {
      tf.dispose(held)
      extra()
      store.dispose()
    },
  })
  switch (stage) {
    case 'autoencoder': {
      const ae = new GridAutoencoder(store, {
        gridShape: shape.grid, channels: shape.channels, tokens, dim,
        hiddenDim: arch.autoencoder.hidden_dim, numLayers: arch.autoencoder.num_layers, fourierFeatures: arch.autoencoder.fourier_features,
      })
      const u = keep(randn([b, ...shape.grid, shape.channels]))
      const p = ae.paramCount()
      return done(ae.kind, p, ae.activationBytes(b), 3 * mlpFlops(p, b * tokens), () => mse(ae.decode(ae.encode(u, {training: true}), {training: true}), u), () => ae.dispose())
    }
    case 'operator': {
      const op = new LatentOperator(store, {inputDim: arch.pdet.input_dim, hiddenDim: arch.pdet.hidden_dim, depths: arch.pdet.depths, groupSize: arch.pdet.group_size, numHeads: arch.pdet.num_heads, mlpRatio: arch.pdet.mlp_ratio, dropout: arch.pdet.dropout, tokens})
      const z0 = keep(randn([b, tokens, dim])) as tf.Tensor3D
      const z1 = keep(randn([b, tokens, dim]))
      const dt = config.training?.dt ?? 0.1
      return done(op.kind, op.paramCount(), op.activationBytes(b), 3 * op.matmulFlops(b), () => trainingLoss(op.forward(z0, dt, {training: true}), z1), () => op.dispose())
    }
    case 'diff_residual': {
      const c = new ResidualCorrector(store, corrOpts)
      const cond = keep(randn([b, tokens, dim])) as tf.Tensor3D
      const res = keep(randn([b, tokens, dim])) as tf.Tensor3D
      const p = c.paramCount()
      let fn: ReturnType<ResidualCorrector['lossFn']> | undefined
      return done(c.kind, p, c.activationBytes(b, tokens), 3 * mlpFlops(p, b * tokens), () => {
        fn?.dispose()
        fn = c.lossFn(cond, res, rng)
        return fn()
      }, () => fn?.dispose())
    }
    case 'consistency_distill': {
      const teacherStore = new ParamStore(new Rng(99))
      const teacher = new ResidualCorrector(teacherStore, corrOpts)
      const student = new ConsistencyStudent(store, corrOpts)
      const cond = keep(randn([b, tokens, dim])) as tf.Tensor3D
      const res = keep(randn([b, tokens, dim])) as tf.Tensor3D
      const p = student.paramCount()
      const steps = config.training?.distill_num_taus ?? 4
      let fn: ReturnType<ConsistencyStudent['distillationLossFn']> | undefined
      // Student forward + backward, one teacher Euler step and one target evaluation.
      const flops = 3 * mlpFlops(p, b * tokens) + mlpFlops(teacher.paramCount(), b * tokens) + mlpFlops(p, b * tokens)
      return done(student.kind, p, student.activationBytes(b, tokens), flops, () => {
        fn?.dispose()
        fn = student.distillationLossFn(teacher, cond, res, rng, steps)
        return fn()
      }, () => {
        fn?.dispose()
        teacherStore.dispose()
      })
    }
    case 'steady_prior': {
      const prior = new SteadyPrior(store, {latentDim: dim, hiddenDim: arch.diffusion.hidden_dim, numLayers: arch.diffusion.num_layers, dropout: arch.diffusion.dropout})
      const z = keep(randn([b, tokens, dim])) as tf.Tensor3D
      const target = keep(randn([b, tokens, dim]))
      const p = prior.paramCount()
      return done(prior.kind, p, prior.activationBytes(b, tokens), 3 * mlpFlops(p, b * tokens), () => mse(prior.forward(z, {training: true}), target))
    }
  }
}


export async function measureModels(config: UpsConfig, shape: DataShape, options: MeasureOptions): Promise<MeasureResult> {
  const backend = await resolveBackend(options.measure ? (options.backend ?? 'auto') : 'cpu')
  const rng = new Rng(config.seed ?? 0)
  const models: ModelReport[] = []
  const stages: StageMeasurement[] = []
  for (const stage of enabledStagesOf(config)) {
    const m = buildStage(stage, config, shape, rng)
    try {
      const s = resolveStage(config, stage)
      const stateFloats = m.report.params * (3 + (s.optimizer.name === 'sgd' ? 0 : 1) + (s.ema_decay ? 1 : 0))
      models.push({...m.report, memoryBytes: 4 * stateFloats + m.report.activationBytes})
      options.onProgress?.(`  ${stage}: ${m.report.kind}, ${m.report.params.toLocaleString('en-US')} parameters`)
      if (!options.measure) continue
      const optimizer: Optimizer = createOptimizer(m.store, toOptimizerConfig(s.optimizer))
      try {
        const stepMs: number[] = []
        // The first steps compile kernels and warm caches (several times slower on wasm): time
        // WARMUP_STEPS of them, then take the median of the rest as the step time.
        const count = Math.max(WARMUP_STEPS + 1, options.steps ?? WARMUP_STEPS + 3)
        for (let i = 0; i < count; i++) {
          const t0 = options.now()
          await trainStepAsync({
            store: m.store,
            optimizer,
            lossFns: Array.from({length: s.accum_steps}, () => m.lossFn),
            clipNorm: s.grad_clip,
            context: {stage, epoch: 0, step: i},
          })
          stepMs.push(options.now() - t0)
        }
        const timed = stepMs.slice(WARMUP_STEPS).sort((a, b) => a - b)
        const measuredMs = Math.max(timed[Math.floor(timed.length / 2)], 1e-3)
        const flops = m.report.flopsPerStep * s.accum_steps
        stages.push({stage, batchSize: s.batch_size * s.accum_steps, stepMs, measuredMs, flopsPerStep: flops, gflops: flops / measuredMs / 1e6})
        options.onProgress?.(`  ${stage}: ${count} steps, ${stepMs.map((t) => t.toFixed(0)).join(' / ')} ms`)
      } finally {
        optimizer.dispose()
      }
    } finally {
      m.dispose()
    }
  }
  return {backend: backend.name, models, stages}
}

function toOptimizerConfig(o: ReturnType<typeof resolveStage>['optimizer']) {
  return {type: o.name, lr: o.lr, weightDecay: o.weight_decay, betas: o.betas, eps: o.eps, momentum: o.momentum}
}
