import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {progressReporter} from '../../cli/progress.js'
import {type GenerateResult, GENERATOR_TASKS, generateDataset, parseSplits} from '../../data/generate/index.js'

export type GenerateCommandResult = GenerateResult & {seconds: number; samplesPerSecond: number}

export default class DataGenerate extends BaseCommand {
  static summary = 'Generate PDEBench-layout training data with real solvers (1D Burgers, 1D advection).'
  static description = `Solves each sample from PDEBench's random initial condition (a constant plus sines of random wavenumbers 1-4, amplitudes and phases) and writes {task}_{split}.h5 per split in the PDEBench raw 1D layout: tensor [N, T, X] float32, x-coordinate [X], t-coordinate [T+1].
burgers1d: u_t + (u^2/2)_x = nu u_xx, periodic on [0, 1), conservative finite volume with a CFL-limited step.
advection1d: u_t + beta u_x = 0, exact shifted solution.
Splits come from disjoint seeds, so the same --seed always gives the same files.`
  static examples = [
    '<%= config.bin %> data generate burgers1d --out data/pdebench --samples 1000',
    '<%= config.bin %> data generate burgers1d --out data/small --samples 40 --nx 64 --nt 51 --nu 0.02 --seed 7',
    '<%= config.bin %> data generate advection1d --out data/pdebench --beta 0.4 --splits train=0.9,test=0.1',
    '<%= config.bin %> data generate burgers1d --out data/pdebench --compression 4 --json',
  ]
  static args = {
    task: Args.string({description: 'What to generate.', required: true, options: [...GENERATOR_TASKS]}),
  }
  static flags = {
    out: Flags.string({description: 'Folder to write {task}_{split}.h5 into (created if missing).', required: true}),
    samples: Flags.integer({description: 'Samples over all splits.', default: 100, min: 1}),
    nx: Flags.integer({description: 'Grid points on [0, 1).', default: 256, min: 8}),
    nt: Flags.integer({description: 'Frames per sample, evenly from t=0 to t=2 (PDEBench: 201).', default: 201, min: 2}),
    nu: Flags.string({description: 'Burgers viscosity.', default: '0.01'}),
    beta: Flags.string({description: 'Advection speed.', default: '0.1'}),
    seed: Flags.integer({description: 'Base seed; sample i of a split uses its own seed after it.', default: 0, min: 0}),
    splits: Flags.string({description: 'Split fractions.', default: 'train=0.8,val=0.1,test=0.1'}),
    compression: Flags.integer({description: 'gzip level for the tensor (0 = none).', default: 0, min: 0, max: 9}),
  }

  async run(): Promise<GenerateCommandResult> {
    const {args, flags} = await this.parse(DataGenerate)
    const progress = progressReporter('generate', process.stderr)
    const started = performance.now()
    const result = await generateDataset({
      task: args.task, outDir: flags.out, samples: flags.samples, nx: flags.nx, nt: flags.nt,
      nu: Number(flags.nu), beta: Number(flags.beta), seed: flags.seed, splits: parseSplits(flags.splits),
      compression: flags.compression,
      onProgress: (p) => progress.update(p.overallDone, p.overallTotal, `${p.split} ${p.done}/${p.total}`),
    })
    progress.done()
    const seconds = (performance.now() - started) / 1000
    const out = {...result, seconds: Number(seconds.toFixed(3)), samplesPerSecond: Number((result.totalSamples / seconds).toFixed(2))}
    if (!this.jsonEnabled()) this.log(renderGenerate(out))
    return out
  }
}

export function renderGenerate(r: GenerateCommandResult): string {
  const p = r.params
  const lines = [
    `Generated ${r.totalSamples} ${r.task} samples (nx=${p.nx}, nt=${p.nt}, t in [0, ${p.tEnd}], ${r.task === 'burgers1d' ? `nu=${p.nu}` : `beta=${p.beta}`}, seed=${r.seed}) in ${r.seconds}s (${r.samplesPerSecond} samples/s):`,
  ]
  for (const f of r.files) lines.push(`  ${f.split.padEnd(6)} ${String(f.samples).padStart(6)} samples  ${(f.bytes / 1e6).toFixed(1).padStart(8)} MB  ${f.path}`)
  lines.push(`Next: ups data validate --data-root ${r.outDir} --task ${r.task} --all-splits`)
  return lines.join('\n')
}
