/**
 * Side-effect module: installs the permitted `process.env` view. It must be
 * the first import of the entry point, so that it runs before any npm module
 * (client-node's `debug` reads the environment while it loads). See
 * {@linkcode installPermittedEnv}.
 *
 * @module
 */
import process from "node:process";
import { installPermittedEnv } from "./process_env.ts";

installPermittedEnv(process);
