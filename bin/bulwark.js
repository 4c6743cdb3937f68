#!/usr/bin/env node
// The `bulwark` command. Node 24 runs the TypeScript sources directly (type stripping).
import { main } from '../cli/main.ts';

process.exitCode = await main(process.argv);
