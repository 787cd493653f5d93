# Build and install smaf: the CLI, the C API library, the shipped plugins,
# the headers and pkg-config files.
#
#   make                              # swift build -c release
#   make install PREFIX=/usr/local    # also DESTDIR=... for packaging
#   make install CONFIG=debug PREFIX=/tmp/smaf   # from the debug build
#
# Layout: PREFIX/bin/smaf and smaf-bench (the benchmark harness `smaf bench`
# runs from smaf's folder), PREFIX/lib/libsmafapi.so (+ libsmaf.so link),
# PREFIX/lib/smaf/plugins/libsmafplugin_*.so, PREFIX/include/smaf/{smaf,plugin}.h,
# PREFIX/lib/pkgconfig/{smaf,smaf-plugin}.pc, PREFIX/share/smaf/source
# (the package sources, for Swift plugins built out of tree with the kit).

PREFIX ?= /usr/local
CONFIG ?= release
DESTDIR ?=
BUILD := .build/$(CONFIG)
DEST := $(DESTDIR)$(PREFIX)
VERSION := 0.1.0
# What loads by default once installed: the allocators and the policy
# module. The test secure module (it grants what its settings say) and the
# example plugins (shm, carveout) are built for the tests and the docs, never
# installed where every smaf process would load them.
SHIPPED_PLUGINS := memfd dmaheap dumb gbm cma policy

.PHONY: all install install-files uninstall

all:
	swift build -c $(CONFIG)

install: all install-files

# The copy alone, from an existing build (the tests use it).
install-files:
	install -d $(DEST)/bin $(DEST)/lib/smaf/plugins $(DEST)/include/smaf $(DEST)/lib/pkgconfig $(DEST)/share/smaf/source
	install -m 755 $(BUILD)/smaf $(BUILD)/smaf-bench $(DEST)/bin/
	install -m 755 $(BUILD)/libsmafapi.so $(DEST)/lib/libsmafapi.so
	ln -sf libsmafapi.so $(DEST)/lib/libsmaf.so
	install -m 755 $(foreach p,$(SHIPPED_PLUGINS),$(BUILD)/libsmafplugin_$(p).so) $(DEST)/lib/smaf/plugins/
	install -m 644 Sources/CSMAFPlugin/include/smaf/plugin.h Sources/CSMAFAPI/include/smaf/smaf.h $(DEST)/include/smaf/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/smaf.pc.in > $(DEST)/lib/pkgconfig/smaf.pc
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/smaf-plugin.pc.in > $(DEST)/lib/pkgconfig/smaf-plugin.pc
	cp -R Package.swift Sources plugins $(DEST)/share/smaf/source/

uninstall:
	rm -rf $(DEST)/bin/smaf $(DEST)/bin/smaf-bench $(DEST)/lib/libsmafapi.so $(DEST)/lib/libsmaf.so $(DEST)/lib/smaf \
	       $(DEST)/include/smaf $(DEST)/lib/pkgconfig/smaf.pc $(DEST)/lib/pkgconfig/smaf-plugin.pc $(DEST)/share/smaf
