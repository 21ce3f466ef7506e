/** A tiny training config (seconds per run) for the `ups train` end-to-end tests. */
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

export function tinyConfig(dataRoot: string, extra = ''): string {
  return `seed: 3
data:
  task: burgers1d
  root: ${dataRoot}
  generate: {samples: 16, nx: 32, nt: 6, nu: 0.02, seed: 5, splits: {train: 0.75, val: 0.25}}
latent: {dim: 4, tokens: 4}
autoencoder: {hidden_dim: 16, num_layers: 2, fourier_features: 2}
operator:
  pdet: {hidden_dim: 8, depths: [1, 1], group_size: 4, num_heads: 2, mlp_ratio: 2.0, dropout: 0.1}
diffusion: {hidden_dim: 8, num_layers: 2, time_embed_dim: 8}
training:
  batch_size: 8
  dt: 0.1
  grad_clip: 1.0
  ema_decay: 0.9
  checkpoint_interval: 1
  distill_num_taus: 3
optimizer: {name: adamw, lr: 3.0e-3}
scheduler: {name: cosineannealinglr, t_max: 4}
stages:
  autoencoder: {epochs: 3}
  operator: {epochs: 4}
  diff_residual: {epochs: 2}
  consistency_distill: {epochs: 2}
  steady_prior: {epochs: 2}
${extra}`
}

export async function weightsSha(ckpt: string): Promise<string> {
  return createHash('sha256').update(await readFile(join(ckpt, 'weights.bin'))).digest('hex')
}
