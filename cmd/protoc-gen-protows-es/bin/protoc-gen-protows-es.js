#!/usr/bin/env node
// @ts-check
import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenProtowsEs } from "../src/protoc-gen-protows-es.js";

runNodeJs(protocGenProtowsEs);
