#!/usr/bin/env bash
# Builds the Docker images of Drover's integration tests without any registry:
#
#   drover-demo:latest     FROM scratch + the statically linked tests/apps/demo binary
#   drover-busybox:latest  imported from a rootfs made of Debian's static busybox
#
# Usage: tests/images/build.sh [demo|busybox]   (default: both)
#
# An image is rebuilt only when its `drover.image-hash` label (sha256 of the binary inside) or
# `drover.recipe-hash` label (sha256 of how it is assembled) differs from what would be built now.
# Concurrent runs are serialized with flock, so parallel test processes may all call it.
#
# Environment:
#   DROVER_IMAGE_TARGET_DIR  cargo target dir of the static build
#                            (default: ${CARGO_TARGET_DIR:-<repo>/target}/static)
set -euo pipefail

readonly DEMO_IMAGE=drover-demo:latest
readonly BUSYBOX_IMAGE=drover-busybox:latest
readonly RUST_TARGET=x86_64-unknown-linux-gnu

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Prints the value of label $2 on image $1, or nothing when there is no such image.
image_label() {
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# True when image $1 carries image hash $2 and recipe hash $3.
image_is_current() {
    [[ "$(image_label "$1" drover.image-hash)" == "$2" ]] &&
        [[ "$(image_label "$1" drover.recipe-hash)" == "$3" ]]
}

# True when $1 is a statically linked executable.
is_static() {
    local desc
    if command -v file >/dev/null; then
        desc="$(file -bL "$1")"
        [[ "$desc" == *"statically linked"* || "$desc" == *"static-pie linked"* ]]
    else
        desc="$(ldd "$1" 2>&1 || true)"
        [[ "$desc" == *"not a dynamic executable"* || "$desc" == *"statically linked"* ]]
    fi
}

# === drover-demo ===

build_demo() {
    local started=$SECONDS
    local target_dir="${DROVER_IMAGE_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}/static}"
    local bin="$target_dir/$RUST_TARGET/release/drover-demo"
    local dockerfile="$here/demo/Dockerfile"

    log "compiling drover-demo (static, release) into $target_dir…"
    # The explicit --target keeps RUSTFLAGS away from build scripts and proc macros, and this
    # separate target dir keeps the host build cache untouched. cargo skips the compile when current.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo build -p drover-demo --release --target "$RUST_TARGET" --target-dir "$target_dir") ||
        die "cargo build of drover-demo failed"
    [[ -x "$bin" ]] || die "cargo did not produce $bin"
    is_static "$bin" ||
        die "$bin is dynamically linked ($(file -b "$bin" 2>/dev/null || ldd "$bin" 2>&1 | head -1)); a FROM scratch image needs a static binary"

    local image_hash recipe_hash
    image_hash="$(sha256 "$bin")"
    recipe_hash="$(sha256 "$dockerfile")"
    if image_is_current "$DEMO_IMAGE" "$image_hash" "$recipe_hash"; then
        log "$DEMO_IMAGE is current"
        return
    fi

    log "building $DEMO_IMAGE image…"
    local ctx
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/drover-demo-image.XXXXXX")"
    cp "$bin" "$ctx/drover-demo"
    # The legacy builder: this engine has no BuildKit front end and nothing may be pulled.
    DOCKER_BUILDKIT=0 docker build --quiet --file "$dockerfile" \
        --build-arg "IMAGE_HASH=$image_hash" --build-arg "RECIPE_HASH=$recipe_hash" \
        --tag "$DEMO_IMAGE" "$ctx" >/dev/null 2>"$ctx.err" || {
        cat "$ctx.err" >&2
        rm -rf "$ctx" "$ctx.err"
        die "docker build of $DEMO_IMAGE failed"
    }
    rm -rf "$ctx" "$ctx.err"
    log "built $DEMO_IMAGE ($(image_size "$DEMO_IMAGE")) in $((SECONDS - started))s"
}

# === drover-busybox ===

# Makes sure /bin/busybox is Debian's statically linked busybox, installing busybox-static if not.
ensure_busybox_static() {
    if [[ -x /bin/busybox ]] && is_static /bin/busybox; then
        return
    fi
    log "installing busybox-static…"
    [[ "$(id -u)" == 0 ]] || die "/bin/busybox is missing or not static; run: apt-get install -y busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y busybox-static >&2 ||
        { apt-get update >&2 && apt-get install -y busybox-static >&2; } ||
        die "could not install busybox-static"
    is_static /bin/busybox || die "/bin/busybox is still not statically linked after installing busybox-static"
}

# Lays out a minimal root filesystem in $1 around the busybox binary $2.
# (Its own text is part of the recipe hash: editing it rebuilds the image.)
make_busybox_rootfs() {
    local root="$1" busybox="$2" applet
    mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/usr"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do
        [[ "$applet" == busybox || -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
    done
    ln -s bin "$root/sbin"
    ln -s ../bin "$root/usr/bin"
    ln -s ../bin "$root/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

build_busybox() {
    local started=$SECONDS
    ensure_busybox_static

    local image_hash recipe_hash
    image_hash="$(sha256 /bin/busybox)"
    recipe_hash="$(declare -f make_busybox_rootfs | sha256sum | cut -d' ' -f1)"
    if image_is_current "$BUSYBOX_IMAGE" "$image_hash" "$recipe_hash"; then
        log "$BUSYBOX_IMAGE is current"
        return
    fi

    log "building $BUSYBOX_IMAGE image…"
    local root
    root="$(mktemp -d "${TMPDIR:-/tmp}/drover-busybox-rootfs.XXXXXX")"
    make_busybox_rootfs "$root" /bin/busybox
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
        docker import \
            --change 'CMD ["/bin/sh"]' \
            --change 'ENV PATH=/bin' \
            --change "LABEL drover.image-hash=$image_hash drover.recipe-hash=$recipe_hash" \
            - "$BUSYBOX_IMAGE" >/dev/null || {
        rm -rf "$root"
        die "docker import of $BUSYBOX_IMAGE failed"
    }
    rm -rf "$root"
    log "built $BUSYBOX_IMAGE ($(image_size "$BUSYBOX_IMAGE")) in $((SECONDS - started))s"
}

image_size() {
    docker image inspect --format '{{ .Size }}' "$1" |
        awk '{ printf "%.1f MB", $1 / 1000000 }'
}

# === main ===

main() {
    local what="${1:-all}"
    case "$what" in
    all | demo | busybox) ;;
    -h | --help)
        sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        return
        ;;
    *) die "unknown image '$what': expected demo, busybox or nothing for both" ;;
    esac
    [[ $# -le 1 ]] || die "expected at most one argument (demo or busybox)"

    command -v docker >/dev/null || die "docker CLI not found"
    docker version --format '{{ .Server.Version }}' >/dev/null 2>&1 ||
        die "cannot reach the Docker engine (is dockerd running, and DOCKER_HOST right?): $(docker version 2>&1 | tail -1)"

    local lock="${TMPDIR:-/tmp}/drover-images.lock"
    exec 9>>"$lock"
    if ! flock --nonblock 9; then
        log "waiting for another build.sh (lock $lock)…"
        flock 9
    fi

    case "$what" in
    demo) build_demo ;;
    busybox) build_busybox ;;
    all)
        build_demo
        build_busybox
        ;;
    esac
}

main "$@"
