#!/usr/bin/env node
// Writes oclif.manifest.json after the build, so the CLI finds a command without importing
// every command module at start-up (what keeps `ups validate` and `ups --help` fast).
import {Plugin} from '@oclif/core'
import {writeFileSync, renameSync} from 'node:fs'

const plugin = new Plugin({root: process.cwd(), type: 'core', ignoreManifest: true, errorOnManifestCreate: true, isRoot: true})
await plugin.load()
const tmp = 'oclif.manifest.json.tmp'
writeFileSync(tmp, JSON.stringify(plugin.manifest, null, 2) + '\n')
renameSync(tmp, 'oclif.manifest.json')
console.error(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`)
