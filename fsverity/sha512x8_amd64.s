//go:build !purego

#include "textflag.h"

// Eight SHA-512 digests of 4096-byte messages at once, with AVX-512: each
// 64-bit lane of a ZMM register belongs to one message.
//
// Registers: Z0-Z7: the states' words a-h; Z16-Z31: the message
// schedules' last 16 words; Z8-Z10: scratch; Z11: the eight messages'
// addresses; R8: the tables (see sha512Tables); CX: blocks left; the
// states before a block are kept on the stack for the feed-forward.

// ROUND does one round: h becomes the new a and d the new e (the caller
// renames the others). wk adds K[t] + W[t] to h.
#define ROUND(a, b, c, d, e, f, g, h, wk) \
	VPRORQ     $14, e, Z8; \
	VPRORQ     $18, e, Z9; \
	VPRORQ     $41, e, Z10; \
	VPTERNLOGQ $0x96, Z10, Z9, Z8; \
	VMOVDQA64  e, Z9; \
	VPTERNLOGQ $0xca, g, f, Z9; \
	VPADDQ     Z8, h, h; \
	VPADDQ     Z9, h, h; \
	wk; \
	VPADDQ     h, d, d; \
	VPRORQ     $28, a, Z8; \
	VPRORQ     $34, a, Z9; \
	VPRORQ     $39, a, Z10; \
	VPTERNLOGQ $0x96, Z10, Z9, Z8; \
	VMOVDQA64  a, Z9; \
	VPTERNLOGQ $0xe8, c, b, Z9; \
	VPADDQ     Z8, h, h; \
	VPADDQ     Z9, h, h

// WK adds schedule word w and the round constant at koff(R8) to h.
#define WK(w, koff, h) VPADDQ w, h, h; VPADDQ.BCST koff(R8), h, h
// PADWK adds the padding block's constant K + W at poff(R8) to h.
#define PADWK(poff, h) VPADDQ.BCST poff(R8), h, h

// SCHED makes w16 (W[t-16]) the schedule word W[t].
#define SCHED(w16, w15, w7, w2) \
	VPRORQ     $1, w15, Z8; \
	VPRORQ     $8, w15, Z9; \
	VPSRLQ     $7, w15, Z10; \
	VPTERNLOGQ $0x96, Z10, Z9, Z8; \
	VPADDQ     Z8, w16, w16; \
	VPRORQ     $19, w2, Z8; \
	VPRORQ     $61, w2, Z9; \
	VPSRLQ     $6, w2, Z10; \
	VPTERNLOGQ $0x96, Z10, Z9, Z8; \
	VPADDQ     Z8, w16, w16; \
	VPADDQ     w7, w16, w16

// Eight rounds, t = base..base+7, with the schedule words w0-w7.
#define ROUNDS8(w0, w1, w2, w3, w4, w5, w6, w7, koff) \
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, WK(w0, koff, Z7)); \
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, WK(w1, koff+8, Z6)); \
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, WK(w2, koff+16, Z5)); \
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, WK(w3, koff+24, Z4)); \
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, WK(w4, koff+32, Z3)); \
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, WK(w5, koff+40, Z2)); \
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, WK(w6, koff+48, Z1)); \
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, WK(w7, koff+56, Z0))

#define PADROUNDS8(poff) \
	ROUND(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, PADWK(poff, Z7)); \
	ROUND(Z7, Z0, Z1, Z2, Z3, Z4, Z5, Z6, PADWK(poff+8, Z6)); \
	ROUND(Z6, Z7, Z0, Z1, Z2, Z3, Z4, Z5, PADWK(poff+16, Z5)); \
	ROUND(Z5, Z6, Z7, Z0, Z1, Z2, Z3, Z4, PADWK(poff+24, Z4)); \
	ROUND(Z4, Z5, Z6, Z7, Z0, Z1, Z2, Z3, PADWK(poff+32, Z3)); \
	ROUND(Z3, Z4, Z5, Z6, Z7, Z0, Z1, Z2, PADWK(poff+40, Z2)); \
	ROUND(Z2, Z3, Z4, Z5, Z6, Z7, Z0, Z1, PADWK(poff+48, Z1)); \
	ROUND(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z0, PADWK(poff+56, Z0))

// Sixteen rounds computing their schedule words first.
#define SCHEDROUNDS16(koff) \
	SCHED(Z16, Z17, Z25, Z30); \
	SCHED(Z17, Z18, Z26, Z31); \
	SCHED(Z18, Z19, Z27, Z16); \
	SCHED(Z19, Z20, Z28, Z17); \
	SCHED(Z20, Z21, Z29, Z18); \
	SCHED(Z21, Z22, Z30, Z19); \
	SCHED(Z22, Z23, Z31, Z20); \
	SCHED(Z23, Z24, Z16, Z21); \
	ROUNDS8(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, koff); \
	SCHED(Z24, Z25, Z17, Z22); \
	SCHED(Z25, Z26, Z18, Z23); \
	SCHED(Z26, Z27, Z19, Z24); \
	SCHED(Z27, Z28, Z20, Z25); \
	SCHED(Z28, Z29, Z21, Z26); \
	SCHED(Z29, Z30, Z22, Z27); \
	SCHED(Z30, Z31, Z23, Z28); \
	SCHED(Z31, Z16, Z24, Z29); \
	ROUNDS8(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, koff+64)

// GATHER loads word i of the current block of the eight messages into w,
// byte-swapped (Z10 holds the swap mask; K1 is clobbered).
#define GATHER(i, w) \
	KXNORW     K2, K2, K1; \
	VPGATHERQQ (i*8)(R9)(Z11*1), K1, w; \
	VPSHUFB    Z10, w, w

#define SAVE \
	VMOVDQU64 Z0, 0(SP); \
	VMOVDQU64 Z1, 64(SP); \
	VMOVDQU64 Z2, 128(SP); \
	VMOVDQU64 Z3, 192(SP); \
	VMOVDQU64 Z4, 256(SP); \
	VMOVDQU64 Z5, 320(SP); \
	VMOVDQU64 Z6, 384(SP); \
	VMOVDQU64 Z7, 448(SP)

#define FEEDFORWARD \
	VPADDQ 0(SP), Z0, Z0; \
	VPADDQ 64(SP), Z1, Z1; \
	VPADDQ 128(SP), Z2, Z2; \
	VPADDQ 192(SP), Z3, Z3; \
	VPADDQ 256(SP), Z4, Z4; \
	VPADDQ 320(SP), Z5, Z5; \
	VPADDQ 384(SP), Z6, Z6; \
	VPADDQ 448(SP), Z7, Z7

// func sha512x8(state *[8][8]uint64, msgs *[8]*[4096]byte, t *sha512Tables)
TEXT ·sha512x8(SB), NOSPLIT, $512-24
	MOVQ         msgs+8(FP), AX
	MOVQ         t+16(FP), R8
	VMOVDQU64    (AX), Z11
	XORQ         R9, R9
	VPBROADCASTQ 1280(R8), Z0 // the initial state
	VPBROADCASTQ 1288(R8), Z1
	VPBROADCASTQ 1296(R8), Z2
	VPBROADCASTQ 1304(R8), Z3
	VPBROADCASTQ 1312(R8), Z4
	VPBROADCASTQ 1320(R8), Z5
	VPBROADCASTQ 1328(R8), Z6
	VPBROADCASTQ 1336(R8), Z7
	MOVQ         $32, CX

block:
	SAVE
	VMOVDQU64 1344(R8), Z10
	GATHER(0, Z16)
	GATHER(1, Z17)
	GATHER(2, Z18)
	GATHER(3, Z19)
	GATHER(4, Z20)
	GATHER(5, Z21)
	GATHER(6, Z22)
	GATHER(7, Z23)
	GATHER(8, Z24)
	GATHER(9, Z25)
	GATHER(10, Z26)
	GATHER(11, Z27)
	GATHER(12, Z28)
	GATHER(13, Z29)
	GATHER(14, Z30)
	GATHER(15, Z31)
	ROUNDS8(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	ROUNDS8(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 64)
	SCHEDROUNDS16(128)
	SCHEDROUNDS16(256)
	SCHEDROUNDS16(384)
	SCHEDROUNDS16(512)
	FEEDFORWARD
	VPADDQ.BCST 1408(R8), Z11, Z11 // the next block of each message
	DECQ        CX
	JNZ         block

	// The padding block of a 4096-byte message.
	SAVE
	PADROUNDS8(640)
	PADROUNDS8(704)
	PADROUNDS8(768)
	PADROUNDS8(832)
	PADROUNDS8(896)
	PADROUNDS8(960)
	PADROUNDS8(1024)
	PADROUNDS8(1088)
	PADROUNDS8(1152)
	PADROUNDS8(1216)
	FEEDFORWARD

	MOVQ      state+0(FP), AX
	VMOVDQU64 Z0, 0(AX)
	VMOVDQU64 Z1, 64(AX)
	VMOVDQU64 Z2, 128(AX)
	VMOVDQU64 Z3, 192(AX)
	VMOVDQU64 Z4, 256(AX)
	VMOVDQU64 Z5, 320(AX)
	VMOVDQU64 Z6, 384(AX)
	VMOVDQU64 Z7, 448(AX)
	VZEROUPPER
	RET
