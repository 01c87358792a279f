// Express 4 is installed as the npm alias express4 (package.json); its API, as far as the tests
// use it, is Express 5's, whose types @types/express has.
declare module "express4" {
  import express from "express";
  export default express;
}
