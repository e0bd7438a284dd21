// AWS JS SDK v3 scenario for tests/test_matrix.py: put, get, list, delete against VT_ENDPOINT.
// Reads the body to upload from VT_INPUT, writes what it got back to VT_OUTPUT and prints
// a JSON summary on stdout. For TLS the test sets NODE_EXTRA_CA_CERTS to its certificate.
"use strict";
const fs = require("fs");
const {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsV2Command, DeleteObjectCommand, DeleteObjectsCommand,
} = require("@aws-sdk/client-s3");

async function main() {
  const env = process.env;
  const client = new S3Client({
    endpoint: env.VT_ENDPOINT,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: env.VT_ACCESS_KEY, secretAccessKey: env.VT_SECRET_KEY },
    maxAttempts: 1,
  });
  const Bucket = env.VT_BUCKET;
  const body = fs.readFileSync(env.VT_INPUT);
  const out = {};
  await client.send(new CreateBucketCommand({ Bucket }));
  const put = await client.send(new PutObjectCommand({
    Bucket, Key: "js/one.bin", Body: body, ContentType: "application/x-js-test", Metadata: { origin: "node" },
  }));
  out.putETag = put.ETag;
  // A stream body of unknown length: the SDK sends it aws-chunked (with a trailing checksum).
  await client.send(new PutObjectCommand({
    Bucket, Key: "js/stream.bin", Body: fs.createReadStream(env.VT_INPUT), ContentLength: body.length,
  }));
  await client.send(new PutObjectCommand({ Bucket, Key: "js/two.txt", Body: "hello from node" }));
  const got = await client.send(new GetObjectCommand({ Bucket, Key: "js/one.bin" }));
  fs.writeFileSync(env.VT_OUTPUT, Buffer.from(await got.Body.transformToByteArray()));
  out.getContentType = got.ContentType;
  out.getMetadata = got.Metadata;
  const streamed = await client.send(new GetObjectCommand({ Bucket, Key: "js/stream.bin" }));
  out.streamSame = Buffer.from(await streamed.Body.transformToByteArray()).equals(body);
  const ranged = await client.send(new GetObjectCommand({ Bucket, Key: "js/two.txt", Range: "bytes=6-9" }));
  out.range = await ranged.Body.transformToString();
  const head = await client.send(new HeadObjectCommand({ Bucket, Key: "js/one.bin" }));
  out.headLength = head.ContentLength;
  const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: "js/" }));
  out.listed = (listed.Contents || []).map((o) => [o.Key, o.Size]);
  const rolled = await client.send(new ListObjectsV2Command({ Bucket, Delimiter: "/" }));
  out.prefixes = (rolled.CommonPrefixes || []).map((p) => p.Prefix);
  await client.send(new DeleteObjectCommand({ Bucket, Key: "js/two.txt" }));
  const multi = await client.send(new DeleteObjectsCommand({
    Bucket, Delete: { Objects: [{ Key: "js/stream.bin" }, { Key: "js/missing" }] },
  }));
  out.deleted = (multi.Deleted || []).map((d) => d.Key).sort();
  const after = await client.send(new ListObjectsV2Command({ Bucket }));
  out.after = (after.Contents || []).map((o) => o.Key);
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  if (err && err.$response) console.error(JSON.stringify(err.$metadata), err.$response.statusCode);
  process.exit(1);
});
