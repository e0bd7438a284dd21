// Prints presigned URLs made by the AWS JS SDK v3 presigner (default settings) as one JSON object.
// Usage: node presign.js ENDPOINT ACCESS SECRET BUCKET
const { S3Client, PutObjectCommand } = require("@aws-sdk/client-s3");
const { getSignedUrl } = require("@aws-sdk/s3-request-presigner");

async function main() {
  const [endpoint, accessKeyId, secretAccessKey, bucket] = process.argv.slice(2);
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  const sign = (input) => getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, ...input }), { expiresIn: 600 });
  const out = {
    // Tags, metadata and a storage class: hoisted into the query.
    tagged: await sign({ Key: "tagged", Tagging: "team=blue", Metadata: { colour: "red" } }),
    // A canned ACL other than private: hoisted too, and refused by a bucket that takes no ACLs.
    acl: await sign({ Key: "acl", ACL: "public-read" }),
    // An SSE header stays a signed header (the presigner does not hoist them): the client sends it.
    dsse: await sign({ Key: "dsse", ServerSideEncryption: "aws:kms:dsse" }),
  };
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
