//go:build !purego

#include "textflag.h"

// Two SHA-256 digests of 4096-byte messages at once, with the SHA
// extensions: the instructions of the two independent computations are
// interleaved, so that each hides the latency of the other's rounds.
//
// Registers: X1, X2: message A's state (ABEF, CDGH order); X3, X4:
// message B's; X5-X8: A's message schedule (four words each); X9-X12:
// B's; X13, X14: round constants plus schedule words (wk) of A and B;
// X0: the wk operand SHA256RNDS2 takes implicitly; X15: scratch.
// R8: the tables (see shaniTables); SI, DI: the messages; CX: blocks
// left. The states before a block are kept on the stack for the
// feed-forward.

// SCHED computes four schedule words into m0 (which held those 16
// earlier): m1, m2, m3 hold the next 12.
#define SCHED(m0, m1, m2, m3) \
	SHA256MSG1 m1, m0; \
	MOVO       m3, X15; \
	PALIGNR    $4, m2, X15; \
	PADDD      X15, m0; \
	SHA256MSG2 m3, m0

// ROUNDS4 does four rounds of both messages with schedule words ma, mb
// and the round constants at koff(R8).
#define ROUNDS4(ma, mb, koff) \
	MOVOU       koff(R8), X13; \
	MOVO        X13, X14; \
	PADDD       ma, X13; \
	PADDD       mb, X14; \
	MOVO        X13, X0; \
	SHA256RNDS2 X0, X1, X2; \
	MOVO        X14, X0; \
	SHA256RNDS2 X0, X3, X4; \
	PSHUFD      $0x0e, X13, X0; \
	SHA256RNDS2 X0, X2, X1; \
	PSHUFD      $0x0e, X14, X0; \
	SHA256RNDS2 X0, X4, X3

// PADROUNDS4 does four rounds of both messages' padding block, whose wk
// are constant, at poff(R8).
#define PADROUNDS4(poff) \
	MOVOU       poff(R8), X0; \
	SHA256RNDS2 X0, X1, X2; \
	SHA256RNDS2 X0, X3, X4; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1; \
	SHA256RNDS2 X0, X4, X3

#define SAVE \
	MOVOU X1, 0(SP); \
	MOVOU X2, 16(SP); \
	MOVOU X3, 32(SP); \
	MOVOU X4, 48(SP)

#define FEEDFORWARD \
	MOVOU 0(SP), X15; \
	PADDD X15, X1; \
	MOVOU 16(SP), X15; \
	PADDD X15, X2; \
	MOVOU 32(SP), X15; \
	PADDD X15, X3; \
	MOVOU 48(SP), X15; \
	PADDD X15, X4

// LOAD reads a message's 64-byte block at p into m0-m3, byte-swapped
// (X13 holds the mask).
#define LOAD(p, m0, m1, m2, m3) \
	MOVOU  0(p), m0; \
	PSHUFB X13, m0; \
	MOVOU  16(p), m1; \
	PSHUFB X13, m1; \
	MOVOU  32(p), m2; \
	PSHUFB X13, m2; \
	MOVOU  48(p), m3; \
	PSHUFB X13, m3

// STORE writes the digest of the state s0, s1 to p (big-endian words;
// X13 holds the mask).
#define STORE(s0, s1, p) \
	PSHUFD  $0x1b, s0, s0; \
	PSHUFD  $0xb1, s1, s1; \
	MOVO    s0, X15; \
	PBLENDW $0xf0, s1, s0; \
	PALIGNR $8, X15, s1; \
	PSHUFB  X13, s0; \
	PSHUFB  X13, s1; \
	MOVOU   s0, 0(p); \
	MOVOU   s1, 16(p)

// BLOCK hashes one 64-byte block of each message (at SI and DI) into
// the states, feed-forward included.
#define BLOCK \
	SAVE; \
	MOVOU 512(R8), X13; \
	LOAD(SI, X5, X6, X7, X8); \
	LOAD(DI, X9, X10, X11, X12); \
	ROUNDS4(X5, X9, 0); \
	ROUNDS4(X6, X10, 16); \
	ROUNDS4(X7, X11, 32); \
	ROUNDS4(X8, X12, 48); \
	SCHED(X5, X6, X7, X8); \
	SCHED(X9, X10, X11, X12); \
	ROUNDS4(X5, X9, 64); \
	SCHED(X6, X7, X8, X5); \
	SCHED(X10, X11, X12, X9); \
	ROUNDS4(X6, X10, 80); \
	SCHED(X7, X8, X5, X6); \
	SCHED(X11, X12, X9, X10); \
	ROUNDS4(X7, X11, 96); \
	SCHED(X8, X5, X6, X7); \
	SCHED(X12, X9, X10, X11); \
	ROUNDS4(X8, X12, 112); \
	SCHED(X5, X6, X7, X8); \
	SCHED(X9, X10, X11, X12); \
	ROUNDS4(X5, X9, 128); \
	SCHED(X6, X7, X8, X5); \
	SCHED(X10, X11, X12, X9); \
	ROUNDS4(X6, X10, 144); \
	SCHED(X7, X8, X5, X6); \
	SCHED(X11, X12, X9, X10); \
	ROUNDS4(X7, X11, 160); \
	SCHED(X8, X5, X6, X7); \
	SCHED(X12, X9, X10, X11); \
	ROUNDS4(X8, X12, 176); \
	SCHED(X5, X6, X7, X8); \
	SCHED(X9, X10, X11, X12); \
	ROUNDS4(X5, X9, 192); \
	SCHED(X6, X7, X8, X5); \
	SCHED(X10, X11, X12, X9); \
	ROUNDS4(X6, X10, 208); \
	SCHED(X7, X8, X5, X6); \
	SCHED(X11, X12, X9, X10); \
	ROUNDS4(X7, X11, 224); \
	SCHED(X8, X5, X6, X7); \
	SCHED(X12, X9, X10, X11); \
	ROUNDS4(X8, X12, 240); \
	FEEDFORWARD

// func sha256x2(out *[2][32]byte, a, b *[4096]byte, t *shaniTables)
TEXT ·sha256x2(SB), NOSPLIT, $64-32
	MOVQ  a+8(FP), SI
	MOVQ  b+16(FP), DI
	MOVQ  t+24(FP), R8
	MOVOU 512+16(R8), X1 // the initial state
	MOVOU 512+32(R8), X2
	MOVO  X1, X3
	MOVO  X2, X4
	MOVQ  $64, CX

block:
	BLOCK
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  block

	// The padding block of a 4096-byte message.
	SAVE
	PADROUNDS4(256)
	PADROUNDS4(272)
	PADROUNDS4(288)
	PADROUNDS4(304)
	PADROUNDS4(320)
	PADROUNDS4(336)
	PADROUNDS4(352)
	PADROUNDS4(368)
	PADROUNDS4(384)
	PADROUNDS4(400)
	PADROUNDS4(416)
	PADROUNDS4(432)
	PADROUNDS4(448)
	PADROUNDS4(464)
	PADROUNDS4(480)
	PADROUNDS4(496)
	FEEDFORWARD

	MOVQ  out+0(FP), AX
	MOVOU 512(R8), X13
	STORE(X1, X2, AX)
	ADDQ  $32, AX
	STORE(X3, X4, AX)
	RET

// func sha256blocks2(s *[16]uint32, a, b *byte, n int, t *shaniTables)
TEXT ·sha256blocks2(SB), NOSPLIT, $64-40
	MOVQ  s+0(FP), AX
	MOVQ  a+8(FP), SI
	MOVQ  b+16(FP), DI
	MOVQ  n+24(FP), CX
	MOVQ  t+32(FP), R8
	TESTQ CX, CX
	JZ    done
	MOVOU 0(AX), X1
	MOVOU 16(AX), X2
	MOVOU 32(AX), X3
	MOVOU 48(AX), X4

loop:
	BLOCK
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loop

	MOVOU X1, 0(AX)
	MOVOU X2, 16(AX)
	MOVOU X3, 32(AX)
	MOVOU X4, 48(AX)

done:
	RET

// ROUNDS4_1 does four rounds of one message (state X1, X2) with schedule
// words m and the round constants at koff(R8).
#define ROUNDS4_1(m, koff) \
	MOVOU       koff(R8), X0; \
	PADDD       m, X0; \
	SHA256RNDS2 X0, X1, X2; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1

#define SAVE1 \
	MOVOU X1, 0(SP); \
	MOVOU X2, 16(SP)

#define FEEDFORWARD1 \
	MOVOU 0(SP), X15; \
	PADDD X15, X1; \
	MOVOU 16(SP), X15; \
	PADDD X15, X2

// BLOCK1 hashes one 64-byte block at SI into the state X1, X2.
#define BLOCK1 \
	SAVE1; \
	MOVOU 512(R8), X13; \
	LOAD(SI, X5, X6, X7, X8); \
	ROUNDS4_1(X5, 0); \
	ROUNDS4_1(X6, 16); \
	ROUNDS4_1(X7, 32); \
	ROUNDS4_1(X8, 48); \
	SCHED(X5, X6, X7, X8); \
	ROUNDS4_1(X5, 64); \
	SCHED(X6, X7, X8, X5); \
	ROUNDS4_1(X6, 80); \
	SCHED(X7, X8, X5, X6); \
	ROUNDS4_1(X7, 96); \
	SCHED(X8, X5, X6, X7); \
	ROUNDS4_1(X8, 112); \
	SCHED(X5, X6, X7, X8); \
	ROUNDS4_1(X5, 128); \
	SCHED(X6, X7, X8, X5); \
	ROUNDS4_1(X6, 144); \
	SCHED(X7, X8, X5, X6); \
	ROUNDS4_1(X7, 160); \
	SCHED(X8, X5, X6, X7); \
	ROUNDS4_1(X8, 176); \
	SCHED(X5, X6, X7, X8); \
	ROUNDS4_1(X5, 192); \
	SCHED(X6, X7, X8, X5); \
	ROUNDS4_1(X6, 208); \
	SCHED(X7, X8, X5, X6); \
	ROUNDS4_1(X7, 224); \
	SCHED(X8, X5, X6, X7); \
	ROUNDS4_1(X8, 240); \
	FEEDFORWARD1

// func sha256blocks1(s *[8]uint32, p *byte, n int, t *shaniTables)
TEXT ·sha256blocks1(SB), NOSPLIT, $32-32
	MOVQ  s+0(FP), AX
	MOVQ  p+8(FP), SI
	MOVQ  n+16(FP), CX
	MOVQ  t+24(FP), R8
	TESTQ CX, CX
	JZ    done1
	MOVOU 0(AX), X1
	MOVOU 16(AX), X2

loop1:
	BLOCK1
	ADDQ $64, SI
	DECQ CX
	JNZ  loop1

	MOVOU X1, 0(AX)
	MOVOU X2, 16(AX)

done1:
	RET

// func cpuidSHA() bool
TEXT ·cpuidSHA(SB), NOSPLIT, $0-1
	XORL  AX, AX
	XORL  CX, CX
	CPUID
	CMPL  AX, $7
	JB    no
	MOVL  $7, AX
	XORL  CX, CX
	CPUID
	SHRL  $29, BX
	ANDL  $1, BX
	MOVB  BX, ret+0(FP)
	RET
no:
	MOVB  $0, ret+0(FP)
	RET
