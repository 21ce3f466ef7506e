/**
 * Builds each model from the config (the same code for training and for loadSimulator), with
 * initial weights from a seed derived per model, so skipping or resuming one stage never changes
 * another's initialisation.
 */
import {resolveArchitecture, type UpsConfig} from '../../config/index.js'
import {sha256} from '../../util/hash.js'
import {loadCheckpoint} from '../checkpoint.js'
import {GridAutoencoder} from '../models/autoencoder.js'
import {ConsistencyStudent} from '../models/consistency.js'
import {ResidualCorrector, type TauDistribution} from '../models/corrector.js'
import {LatentOperator} from '../models/operator.js'
import {SteadyPrior} from '../models/steady-prior.js'
import {ParamStore} from '../params.js'
import {Rng} from '../rng.js'

/** A 32-bit seed for (base seed, label): independent streams for init, shuffling, noise. */
export function deriveSeed(seed: number, label: string): number {
  return (Number.parseInt(sha256(`${seed}:${label}`).slice(0, 8), 16) ^ (seed >>> 0)) >>> 0
}

export function buildAutoencoder(config: UpsConfig, gridShape: number[], channels: number, seed: number): GridAutoencoder {
  const a = resolveArchitecture(config)
  const store = new ParamStore(new Rng(deriveSeed(seed, 'autoencoder/init')))
  return new GridAutoencoder(store, {
    gridShape, channels, tokens: a.latent.tokens, dim: a.latent.dim,
    hiddenDim: a.autoencoder.hidden_dim, numLayers: a.autoencoder.num_layers, fourierFeatures: a.autoencoder.fourier_features,
  })
}

export function buildOperator(config: UpsConfig, seed: number): LatentOperator {
  const a = resolveArchitecture(config)
  const store = new ParamStore(new Rng(deriveSeed(seed, 'operator/init')))
  return new LatentOperator(store, {
    inputDim: a.pdet.input_dim, hiddenDim: a.pdet.hidden_dim, depths: a.pdet.depths, groupSize: a.pdet.group_size,
    numHeads: a.pdet.num_heads, mlpRatio: a.pdet.mlp_ratio, dropout: a.pdet.dropout, tokens: a.latent.tokens,
  })
}

function correctorOptions(config: UpsConfig) {
  const d = resolveArchitecture(config).diffusion
  const t = config.training?.tau_distribution
  const tauDistribution: TauDistribution = t?.type === 'beta' ? {type: 'beta', alpha: t.alpha ?? 1, beta: t.beta ?? 1} : {type: 'uniform'}
  return {latentDim: d.latent_dim, hiddenDim: d.hidden_dim, numLayers: d.num_layers, timeEmbedDim: d.time_embed_dim, dropout: d.dropout, tauDistribution}
}

export function buildCorrector(config: UpsConfig, seed: number): ResidualCorrector {
  return new ResidualCorrector(new ParamStore(new Rng(deriveSeed(seed, 'diff_residual/init'))), correctorOptions(config))
}

export function buildStudent(config: UpsConfig, seed: number): ConsistencyStudent {
  return new ConsistencyStudent(new ParamStore(new Rng(deriveSeed(seed, 'consistency_distill/init'))), correctorOptions(config))
}

export function buildSteadyPrior(config: UpsConfig, seed: number): SteadyPrior {
  const d = resolveArchitecture(config).diffusion
  return new SteadyPrior(new ParamStore(new Rng(deriveSeed(seed, 'steady_prior/init'))), {
    latentDim: d.latent_dim, hiddenDim: d.hidden_dim, numLayers: d.num_layers, dropout: d.dropout,
  })
}

/** Loads a (verified) checkpoint's weights into a store; returns the weights' sha256. */
export async function loadWeights(store: ParamStore, path: string): Promise<string> {
  const c = await loadCheckpoint(path)
  store.importArrays(c.tensors, '', `checkpoint ${path}`)
  return c.manifest.weightsSha256
}
