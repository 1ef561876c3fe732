#!/bin/sh
# Build the demo JMX app with plain javac against Debian's jars (no Maven, no downloads).
# Needs: default-jdk-headless (javac), libjolokia-core-java, libjetty9-java, libservlet-api-java.
# Usage: demo/jmx-app/build.sh [OUT_DIR]   (default: demo/jmx-app/build)
# Run it with: java -cp "OUT_DIR/classes:$(cat OUT_DIR/classpath)" demo.DemoApp --port 8778
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/build}
jars=${JAVA_JARS:-/usr/share/java}
cp=""
for jar in jolokia-core json-simple jetty9-server jetty9-servlet jetty9-security jetty9-http \
           jetty9-io jetty9-util servlet-api; do
  if [ ! -f "$jars/$jar.jar" ]; then
    echo "build.sh: missing $jars/$jar.jar (apt-get install libjolokia-core-java libjetty9-java libservlet-api-java)" >&2
    exit 1
  fi
  cp="$cp${cp:+:}$jars/$jar.jar"
done
rm -rf "$out/classes"
mkdir -p "$out/classes"
javac -nowarn -encoding UTF-8 --release 17 -d "$out/classes" -cp "$cp" "$here"/src/demo/*.java
printf '%s\n' "$cp" > "$out/classpath"
echo "$out"
