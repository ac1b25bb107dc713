import { runSnippet } from './kit.js';
import { describeResourceServer } from './suite.js';

// createVerifier on its own, in a bare node:http server (docs/resource-servers.md, "Any other framework").
describeResourceServer('tessera/verify in a node:http server', (issuer) => runSnippet('node-http', issuer));
