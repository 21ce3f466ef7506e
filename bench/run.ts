/**
 * `npm run bench [-- NAME ...]`: runs the benchmarks, prints ratios against references measured
 * in the same run, and writes each one's figures to bench/results/<name>.json.
 */
import {mkdir} from 'node:fs/promises'
import {cpus} from 'node:os'
import {join} from 'node:path'

import {writeJsonAtomic} from '../src/util/fs.js'

type Bench = () => Promise<unknown>

const BENCHES: Record<string, Bench> = {
  startup: async () => (await import('./startup.js')).benchStartup(),
  training: async () => (await import('./training.js')).benchTraining(),
  kernels: async () => (await import('./kernels.js')).benchKernels(),
  // Needs a WebGPU adapter (a software one with UPS_WEBGPU_ALLOW_SOFTWARE=1): only when asked for by name.
  'kernels-webgpu': async () => (await import('./kernels.js')).benchKernels('webgpu'),
  data: async () => (await import('./data.js')).benchData(),
  estimate: async () => (await import('./estimate.js')).benchEstimate(),
  // Minutes of training: run on its own with `npm run bench:quality`.
  quality: async () => (await import('./quality.js')).benchQuality(),
  // An 8.2 GB (sparse) dataset trained end to end, minutes: `npm run bench -- scale`.
  scale: async () => (await import('./scale.js')).benchScale(),
}

const RESULTS = new URL('results/', import.meta.url).pathname
const wanted = process.argv.slice(2)
// quality and scale train for minutes, kernels-webgpu needs an adapter: only when asked for by name.
const names = wanted.length > 0 ? wanted : Object.keys(BENCHES).filter((n) => n !== 'quality' && n !== 'scale' && n !== 'kernels-webgpu')
const unknown = names.filter((n) => !BENCHES[n])
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`)
  process.exit(2)
}

await mkdir(RESULTS, {recursive: true})
const machine = {node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', platform: process.platform}
for (const name of names) {
  console.log(`\n== ${name}`)
  const figures = await BENCHES[name]()
  await writeJsonAtomic(join(RESULTS, `${name}.json`), {benchmark: name, measured_at: new Date().toISOString(), machine, figures})
  console.log(`-> bench/results/${name}.json`)
}
