/**
 * The real side-effecting dependencies commands hand to modules. Tests pass fakes instead.
 */
import {execa} from 'execa'

import type {BackendProbe, DoctorDeps} from '../doctor/index.js'

async function probeImport(name: string, label: string): Promise<BackendProbe> {
  try {
    await import(name)
    return {name: label, available: true, detail: `${name} loads`}
  } catch (error) {
    const msg = (error as Error).message ?? String(error)
    const missing = /Cannot find (package|module)/.test(msg)
    return {name: label, available: false, detail: missing ? `${name} is not installed` : `${name} failed to load: ${msg.split('\n')[0]}`}
  }
}

export function realDoctorDeps(): DoctorDeps {
  return {
    env: process.env,
    nodeVersion: process.version,
    async probeBackends() {
      return [
        await probeImport('@tensorflow/tfjs-node-gpu', 'tensorflow-gpu'),
        await probeImport('@tensorflow/tfjs-node', 'tensorflow'),
        await probeImport('@tensorflow/tfjs-backend-wasm', 'wasm'),
        await probeImport('@tensorflow/tfjs-core', 'cpu'),
      ]
    },
    async vastaiVersion() {
      const bin = process.env.UPS_VASTAI_BIN || 'vastai'
      try {
        const r = await execa(bin, ['--version'], {timeout: 15_000, reject: false, env: {VAST_API_KEY: ''}})
        if (r.failed && (r as {code?: string}).code === 'ENOENT') return {bin, version: null, error: 'not found on PATH'}
        const version = `${r.stdout}`.trim().split('\n').pop() || null
        return {bin, version, error: version ? undefined : `\`${bin} --version\` printed nothing`}
      } catch (error) {
        return {bin, version: null, error: (error as Error).message}
      }
    },
  }
}
