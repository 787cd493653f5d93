extension PluginTemplates {
    /// The C plugin: <smaf/plugin.h> and libc only. Sealed memfds, bytes and
    /// 32-bit RGB images, every constraint it cannot meet refused by name.
    static func cSource(name: String, cname: String) -> String {
        #"""
        /*
         * \#(name): TODO say in one line what memory this allocator hands out and
         * which devices need it. As generated it serves sealed memfds (shared
         * memory nobody can shrink or grow): CPU-mappable, not a dma-buf, not
         * contiguous. Put your heap in make_memory(), say what that memory is in
         * capabilities() (the core turns away what it rules out), leave match()
         * what only this plugin knows, and run `make check` after every change.
         */
        #define _GNU_SOURCE
        #include <errno.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>

        #include <smaf/plugin.h>

        #define NAME "\#(name)"
        #define PITCH_ALIGN 64 /* rows on cache lines when no device asks for more */

        static uint64_t round_up(uint64_t x, uint64_t align)
        {
            if (align <= 1)
                return x;
            return x > UINT64_MAX - (align - 1) ? 0 : (x + align - 1) / align * align;
        }

        /* Decides from the request alone: 0 with the size and pitch, or -EINVAL
         * with the reason. match() and allocate() both call it, so they agree. */
        static int plan(const struct smaf_request *r, const struct smaf_constraints *m,
                        uint64_t *size, uint64_t *pitch, char *why, size_t n)
        {
        #define REFUSE(...) return snprintf(why, n, __VA_ARGS__), -EINVAL
            uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
            *size = r->size;
            *pitch = 0;
            if (r->width) {
                /* XR24, AR24, XB24, AB24: 4 bytes a pixel. TODO: your formats. */
                uint32_t f = r->fourcc;
                if (f != 0x34325258 && f != 0x34325241 && f != 0x34324258 && f != 0x34324241)
                    REFUSE("format 0x%08x is not one of XR24, AR24, XB24, AB24", f);
                if ((m->max_width && r->width > m->max_width) || (m->max_height && r->height > m->max_height))
                    REFUSE("%ux%u exceeds the devices' maximum", r->width, r->height);
                uint64_t align = m->pitch_alignment > 1 ? m->pitch_alignment : 1;
                while (align % PITCH_ALIGN && align < UINT32_MAX) /* a multiple of both */
                    align += m->pitch_alignment > 1 ? m->pitch_alignment : 1;
                uint64_t rows = round_up(r->height, m->height_alignment);
                *pitch = round_up((uint64_t)r->width * 4, align);
                if (!*pitch || *pitch > UINT32_MAX || !rows || (m->max_pitch && *pitch > m->max_pitch))
                    REFUSE("no pitch for %u pixels fits the devices' alignment and maximum", r->width);
                if (*pitch > UINT64_MAX / rows)
                    REFUSE("%ux%u overflows", r->width, r->height);
                if (*pitch * rows > *size)
                    *size = *pitch * rows;
            }
            if (*size == 0 || *size > (uint64_t)INT64_MAX - page)
                REFUSE("%llu bytes is not a size this plugin allocates", (unsigned long long)*size);
            if (m->max_size && *size > m->max_size)
                REFUSE("%llu bytes exceeds the max size %llu", (unsigned long long)*size, (unsigned long long)m->max_size);
            *size = round_up(*size, page);
            return 0;
        #undef REFUSE
        }

        static int \#(cname)_open(const struct smaf_core *core, void **ctx, char *error, size_t error_size)
        {
            /* Open your device or heap here; on failure fill `error` and return
             * a negative errno, and the core skips this plugin with that reason. */
            (void)error, (void)error_size;
            if (core->log)
                core->log(core->core_data, SMAF_LOG_DEBUG, NAME, "opened");
            *ctx = NULL;
            return 0;
        }

        static void \#(cname)_close(void *ctx) { (void)ctx; }

        /* Pure and deterministic: no allocation, no state change, every
         * rejection with its reason. */
        static int \#(cname)_match(void *ctx, const struct smaf_request *request, const struct smaf_constraints *merged,
                                   const struct smaf_constraints *const *devices, uint32_t device_count,
                                   struct smaf_verdict *verdict)
        {
            uint64_t size, pitch;
            (void)ctx, (void)devices, (void)device_count; /* merged carries every device's needs */
            return plan(request, merged, &size, &pitch, verdict->reason, sizeof verdict->reason) == 0;
        }

        /* TODO: your heap. Returns an fd this plugin owns until release(), or -errno. */
        static int make_memory(uint64_t size)
        {
            int fd = memfd_create("smaf-" NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
            if (fd < 0)
                return -errno;
            if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
                int err = errno;
                close(fd);
                return -err;
            }
            return fd;
        }

        static int \#(cname)_allocate(void *ctx, const struct smaf_request *request, const struct smaf_constraints *merged,
                                      const struct smaf_constraints *const *devices, uint32_t device_count,
                                      struct smaf_allocation *out, char *error, size_t error_size)
        {
            uint64_t size, pitch;
            (void)ctx, (void)devices, (void)device_count;
            int err = plan(request, merged, &size, &pitch, error, error_size);
            if (err)
                return err;
            int fd = make_memory(size);
            if (fd < 0)
                return snprintf(error, error_size, "memfd of %llu bytes: %s", (unsigned long long)size, strerror(-fd)), fd;
            out->fd = fd;
            out->size = size;
            out->flags = SMAF_ALLOCATION_CPU_MAPPABLE;
            out->fourcc = request->fourcc;
            out->width = request->width;
            out->height = request->height;
            out->modifier = 0; /* DRM_FORMAT_MOD_LINEAR */
            out->plane_count = 1;
            out->planes[0] = (struct smaf_plane){ .fd = -1, .stride = (uint32_t)pitch, .offset = 0 };
            snprintf(out->detail, sizeof out->detail, "sealed memfd, %llu bytes", (unsigned long long)size);
            return 0;
        }

        /* Closes every fd allocate() made for this allocation. */
        static void \#(cname)_release(void *ctx, struct smaf_allocation *allocation)
        {
            (void)ctx;
            close(allocation->fd);
        }

        /* What every buffer is, said once (ABI 1.1): the core refuses devices
         * that need a dma-buf, contiguity, an address range, read-only fds or
         * another layout before match() is asked. TODO: your memory's truth. */
        static int \#(cname)_capabilities(void *ctx, struct smaf_capabilities *caps)
        {
            (void)ctx;
            caps->flags = SMAF_CAP_CPU_MAPPABLE | SMAF_CAP_BYTES | SMAF_CAP_IMAGES;
            return 0;
        }

        static const struct smaf_allocator_ops \#(cname)_ops = {
            .struct_size = sizeof(struct smaf_allocator_ops),
            .match = \#(cname)_match,
            .allocate = \#(cname)_allocate,
            .release = \#(cname)_release,
            .capabilities = \#(cname)_capabilities,
        };

        static const struct smaf_plugin \#(cname)_plugin = {
            .struct_size = sizeof(struct smaf_plugin),
            .abi_major = SMAF_PLUGIN_ABI_MAJOR,
            .abi_minor = SMAF_PLUGIN_ABI_MINOR,
            .abi_minor_required = 1, /* the capabilities op: a 1.0 core would skip the checks it stands for */
            .kind = SMAF_PLUGIN_KIND_ALLOCATOR,
            .name = NAME,
            .description = "TODO: what memory, for which devices",
            .default_rank = SMAF_RANK_NONE, /* only when named; raise it once it is ready */
            .open = \#(cname)_open,
            .close = \#(cname)_close,
            .allocator = &\#(cname)_ops,
        };

        const struct smaf_plugin *SMAF_PLUGIN_ENTRY(const struct smaf_core *core)
        {
            (void)core;
            return &\#(cname)_plugin;
        }

        """#
    }
}
