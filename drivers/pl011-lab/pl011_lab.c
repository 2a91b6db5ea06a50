// SPDX-License-Identifier: GPL-2.0
/*
 * pl011_lab: a small driver for the ARM PrimeCell PL011 UART of QEMU's
 * "virt" board, written to be read. It follows amba-pl011.c, without DMA,
 * consoles, vendor variants or RS485.
 *
 * Every register access goes through lab_read() and lab_write(): a load or
 * a store at the device's MMIO base plus the register's offset, as in the
 * in-tree driver's readb(uap->port.membase + UART010_CR).
 *
 * The UART appears as /dev/ttyLAB0 (dynamic major). The registers are
 * dumped by name in debugfs: /sys/kernel/debug/pl011_lab/<device>/registers.
 */

#include <linux/amba/bus.h>
#include <linux/amba/serial.h>
#include <linux/clk.h>
#include <linux/debugfs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/serial.h>
#include <linux/serial_core.h>
#include <linux/tty.h>
#include <linux/tty_flip.h>

#define LAB_DRIVER_NAME		"pl011_lab"
#define LAB_TTY_NAME		"ttyLAB"
#define LAB_NR_PORTS		4
/* The PL011's FIFOs hold 16 characters (32 from r1p5 on). */
#define LAB_FIFO_SIZE		16
#define LAB_ISR_PASS_LIMIT	256
#define LAB_ERROR_IM		(UART011_OEIM | UART011_BEIM | UART011_PEIM | \
				 UART011_FEIM)
#define LAB_RX_IM		(UART011_RXIM | UART011_RTIM | LAB_ERROR_IM)
#define LAB_MODEM_IM		(UART011_RIMIM | UART011_CTSMIM | UART011_DCDMIM | \
				 UART011_DSRMIM)
/* Every interrupt's status bit: written to ICR, it clears them all. */
#define LAB_ALL_IS		(UART011_OEIS | UART011_BEIS | UART011_PEIS | \
				 UART011_FEIS | UART011_RTIS | UART011_TXIS | \
				 UART011_RXIS | UART011_DSRMIS | UART011_DCDMIS | \
				 UART011_CTSMIS | UART011_RIMIS)
#define LAB_DR_ERROR		(UART011_DR_OE | UART011_DR_BE | UART011_DR_PE | \
				 UART011_DR_FE)
/* A bit above DR's: set on every character, masked out when CREAD is off. */
#define LAB_DUMMY_DR_RX		BIT(16)

struct lab_port {
	struct uart_port port;
	struct clk *clk;
	struct dentry *debugfs;
	u32 im;			/* the interrupt mask, as last written to IMSC */
};

static struct dentry *lab_debugfs_root;
static DEFINE_IDA(lab_ida);

static inline struct lab_port *to_lab_port(struct uart_port *port)
{
	return container_of(port, struct lab_port, port);
}

static u32 lab_read(const struct lab_port *lp, unsigned int reg)
{
	return readl(lp->port.membase + reg);
}

/* The value first, then the port and the register, as pl011_write(). */
static void lab_write(u32 val, const struct lab_port *lp, unsigned int reg)
{
	writel(val, lp->port.membase + reg);
}

/* ------------------------------------------------------------------ TX */

static void lab_stop_tx(struct uart_port *port)
{
	struct lab_port *lp = to_lab_port(port);

	lp->im &= ~UART011_TXIM;
	lab_write(lp->im, lp, UART011_IMSC);
}

/*
 * Fill the TX FIFO from the circular buffer, until it is full (TXFF). From
 * the interrupt, send at most half a FIFO, as amba-pl011 does, to bound the
 * time spent there. Returns true while characters remain, so the caller
 * keeps the TX interrupt enabled.
 */
static bool lab_tx_chars(struct lab_port *lp, bool from_irq)
{
	struct uart_port *port = &lp->port;
	struct circ_buf *xmit = &port->state->xmit;
	int budget = from_irq ? LAB_FIFO_SIZE / 2 : INT_MAX;

	if (port->x_char) {
		if (lab_read(lp, UART01x_FR) & UART01x_FR_TXFF)
			return true;
		lab_write(port->x_char, lp, UART01x_DR);
		port->icount.tx++;
		port->x_char = 0;
		budget--;
	}
	if (uart_circ_empty(xmit) || uart_tx_stopped(port)) {
		lab_stop_tx(port);
		return false;
	}
	while (budget-- > 0 && !uart_circ_empty(xmit) &&
	       !(lab_read(lp, UART01x_FR) & UART01x_FR_TXFF)) {
		lab_write(xmit->buf[xmit->tail], lp, UART01x_DR);
		uart_xmit_advance(port, 1);
	}
	if (uart_circ_chars_pending(xmit) < WAKEUP_CHARS)
		uart_write_wakeup(port);
	if (uart_circ_empty(xmit)) {
		lab_stop_tx(port);
		return false;
	}
	return true;
}

static void lab_start_tx(struct uart_port *port)
{
	struct lab_port *lp = to_lab_port(port);

	if (lab_tx_chars(lp, false)) {
		lp->im |= UART011_TXIM;
		lab_write(lp->im, lp, UART011_IMSC);
	}
}

/* ------------------------------------------------------------------ RX */

static void lab_rx_chars(struct lab_port *lp)
	__releases(&lp->port.lock)
	__acquires(&lp->port.lock)
{
	struct uart_port *port = &lp->port;
	unsigned int budget = LAB_FIFO_SIZE * 2;

	while (budget-- && !(lab_read(lp, UART01x_FR) & UART01x_FR_RXFE)) {
		u32 ch = lab_read(lp, UART01x_DR) | LAB_DUMMY_DR_RX;
		unsigned int flag = TTY_NORMAL;

		port->icount.rx++;
		if (unlikely(ch & LAB_DR_ERROR)) {
			if (ch & UART011_DR_BE) {
				ch &= ~(UART011_DR_FE | UART011_DR_PE);
				port->icount.brk++;
				if (uart_handle_break(port))
					continue;
			} else if (ch & UART011_DR_PE) {
				port->icount.parity++;
			} else if (ch & UART011_DR_FE) {
				port->icount.frame++;
			}
			if (ch & UART011_DR_OE)
				port->icount.overrun++;
			ch &= port->read_status_mask;
			if (ch & UART011_DR_BE)
				flag = TTY_BREAK;
			else if (ch & UART011_DR_PE)
				flag = TTY_PARITY;
			else if (ch & UART011_DR_FE)
				flag = TTY_FRAME;
		}
		if (uart_prepare_sysrq_char(port, ch & 0xff))
			continue;
		uart_insert_char(port, ch, UART011_DR_OE, ch & 0xff, flag);
	}
	spin_unlock(&port->lock);
	tty_flip_buffer_push(&port->state->port);
	spin_lock(&port->lock);
}

static void lab_stop_rx(struct uart_port *port)
{
	struct lab_port *lp = to_lab_port(port);

	lp->im &= ~LAB_RX_IM;
	lab_write(lp->im, lp, UART011_IMSC);
}

static irqreturn_t lab_int(int irq, void *dev_id)
{
	struct lab_port *lp = dev_id;
	unsigned int pass = 0;
	unsigned long flags;
	u32 status;

	spin_lock_irqsave(&lp->port.lock, flags);
	status = lab_read(lp, UART011_MIS);
	if (!status) {
		spin_unlock_irqrestore(&lp->port.lock, flags);
		return IRQ_NONE;
	}
	do {
		/* RX and TX clear themselves as the FIFOs drain and fill. */
		lab_write(status & ~(UART011_TXIS | UART011_RTIS |
				     UART011_RXIS), lp, UART011_ICR);
		if (status & (UART011_RTIS | UART011_RXIS))
			lab_rx_chars(lp);
		if (status & UART011_TXIS)
			lab_tx_chars(lp, true);
		status = lab_read(lp, UART011_MIS);
	} while (status && ++pass < LAB_ISR_PASS_LIMIT);
	/* A sysrq character seen by lab_rx_chars() runs once the lock is free. */
	uart_unlock_and_check_sysrq_irqrestore(&lp->port, flags);
	return IRQ_HANDLED;
}

/* --------------------------------------------------------- modem lines */

static unsigned int lab_tx_empty(struct uart_port *port)
{
	u32 fr = lab_read(to_lab_port(port), UART01x_FR);

	return fr & (UART01x_FR_BUSY | UART01x_FR_TXFF) ? 0 : TIOCSER_TEMT;
}

static unsigned int lab_get_mctrl(struct uart_port *port)
{
	u32 fr = lab_read(to_lab_port(port), UART01x_FR);
	unsigned int mctrl = 0;

	if (fr & UART01x_FR_DCD)
		mctrl |= TIOCM_CAR;
	if (fr & UART01x_FR_DSR)
		mctrl |= TIOCM_DSR;
	if (fr & UART01x_FR_CTS)
		mctrl |= TIOCM_CTS;
	if (fr & UART011_FR_RI)
		mctrl |= TIOCM_RNG;
	return mctrl;
}

static void lab_set_mctrl(struct uart_port *port, unsigned int mctrl)
{
	struct lab_port *lp = to_lab_port(port);
	u32 cr = lab_read(lp, UART011_CR);

	cr &= ~(UART011_CR_RTS | UART011_CR_DTR | UART011_CR_OUT1 |
		UART011_CR_OUT2 | UART011_CR_LBE);
	if (mctrl & TIOCM_RTS)
		cr |= UART011_CR_RTS;
	if (mctrl & TIOCM_DTR)
		cr |= UART011_CR_DTR;
	if (mctrl & TIOCM_OUT1)
		cr |= UART011_CR_OUT1;
	if (mctrl & TIOCM_OUT2)
		cr |= UART011_CR_OUT2;
	if (mctrl & TIOCM_LOOP)
		cr |= UART011_CR_LBE;
	lab_write(cr, lp, UART011_CR);
}

static void lab_enable_ms(struct uart_port *port)
{
	struct lab_port *lp = to_lab_port(port);

	lp->im |= LAB_MODEM_IM;
	lab_write(lp->im, lp, UART011_IMSC);
}

static void lab_break_ctl(struct uart_port *port, int break_state)
{
	struct lab_port *lp = to_lab_port(port);
	unsigned long flags;
	u32 lcrh;

	spin_lock_irqsave(&port->lock, flags);
	lcrh = lab_read(lp, UART011_LCRH);
	if (break_state)
		lcrh |= UART01x_LCRH_BRK;
	else
		lcrh &= ~UART01x_LCRH_BRK;
	lab_write(lcrh, lp, UART011_LCRH);
	spin_unlock_irqrestore(&port->lock, flags);
}

/* ------------------------------------------------------- open and close */

/*
 * RXIS rises only when the RX FIFO crosses its trigger level. Characters left
 * from before the open could hold it at that level, and no RX interrupt would
 * ever come: empty the FIFO first, as amba-pl011 does.
 */
static void lab_drain_rx(struct lab_port *lp)
{
	unsigned int i;

	for (i = 0; i < lp->port.fifosize * 2; i++) {
		if (lab_read(lp, UART01x_FR) & UART01x_FR_RXFE)
			break;
		lab_read(lp, UART01x_DR);
	}
}

static int lab_startup(struct uart_port *port)
{
	struct lab_port *lp = to_lab_port(port);
	unsigned long flags;
	int ret;

	ret = clk_prepare_enable(lp->clk);
	if (ret)
		return ret;

	lab_write(UART011_IFLS_RX4_8 | UART011_IFLS_TX4_8, lp, UART011_IFLS);
	lab_write(LAB_ALL_IS, lp, UART011_ICR);
	ret = request_irq(port->irq, lab_int, 0, LAB_DRIVER_NAME, lp);
	if (ret) {
		clk_disable_unprepare(lp->clk);
		return ret;
	}

	spin_lock_irqsave(&port->lock, flags);
	lab_write(lab_read(lp, UART011_CR) | UART01x_CR_UARTEN |
		  UART011_CR_TXE | UART011_CR_RXE, lp, UART011_CR);
	lab_drain_rx(lp);
	lp->im = LAB_RX_IM;
	lab_write(lp->im, lp, UART011_IMSC);
	spin_unlock_irqrestore(&port->lock, flags);
	return 0;
}

static void lab_shutdown(struct uart_port *port)
{
	struct lab_port *lp = to_lab_port(port);
	unsigned long flags;

	spin_lock_irqsave(&port->lock, flags);
	lp->im = 0;
	lab_write(lp->im, lp, UART011_IMSC);
	lab_write(LAB_ALL_IS, lp, UART011_ICR);
	spin_unlock_irqrestore(&port->lock, flags);

	free_irq(port->irq, lp);

	/* Keep RTS and DTR as set_mctrl left them; stop the UART and the FIFOs. */
	lab_write(lab_read(lp, UART011_CR) &
		  (UART011_CR_RTS | UART011_CR_DTR), lp, UART011_CR);
	lab_write(lab_read(lp, UART011_LCRH) &
		  ~(UART01x_LCRH_BRK | UART01x_LCRH_FEN), lp, UART011_LCRH);
	clk_disable_unprepare(lp->clk);
}

/*
 * Baud rate: the PL011 divides UARTCLK by 16 * (IBRD + FBRD / 64), so in
 * 64ths of a unit the divisor is UARTCLK * 4 / baud: IBRD is its integer
 * part and FBRD its six fractional bits.
 */
static void lab_set_termios(struct uart_port *port, struct ktermios *termios,
			    const struct ktermios *old)
{
	struct lab_port *lp = to_lab_port(port);
	unsigned int baud, quot;
	unsigned long flags;
	u32 lcrh, cr;

	baud = uart_get_baud_rate(port, termios, old, 0, port->uartclk / 16);
	quot = DIV_ROUND_CLOSEST(port->uartclk * 4, baud);

	switch (termios->c_cflag & CSIZE) {
	case CS5:
		lcrh = UART01x_LCRH_WLEN_5;
		break;
	case CS6:
		lcrh = UART01x_LCRH_WLEN_6;
		break;
	case CS7:
		lcrh = UART01x_LCRH_WLEN_7;
		break;
	default:
		lcrh = UART01x_LCRH_WLEN_8;
		break;
	}
	if (termios->c_cflag & CSTOPB)
		lcrh |= UART01x_LCRH_STP2;
	if (termios->c_cflag & PARENB) {
		lcrh |= UART01x_LCRH_PEN;
		if (!(termios->c_cflag & PARODD))
			lcrh |= UART01x_LCRH_EPS;
		if (termios->c_cflag & CMSPAR)
			lcrh |= UART011_LCRH_SPS;
	}
	lcrh |= UART01x_LCRH_FEN;

	spin_lock_irqsave(&port->lock, flags);
	uart_update_timeout(port, termios->c_cflag, baud);

	port->read_status_mask = UART011_DR_OE | 0xff;
	if (termios->c_iflag & INPCK)
		port->read_status_mask |= UART011_DR_FE | UART011_DR_PE;
	if (termios->c_iflag & (IGNBRK | BRKINT | PARMRK))
		port->read_status_mask |= UART011_DR_BE;
	port->ignore_status_mask = 0;
	if (termios->c_iflag & IGNPAR)
		port->ignore_status_mask |= UART011_DR_FE | UART011_DR_PE;
	if (termios->c_iflag & IGNBRK)
		port->ignore_status_mask |= UART011_DR_BE;
	if ((termios->c_cflag & CREAD) == 0)
		port->ignore_status_mask |= LAB_DUMMY_DR_RX;

	if (UART_ENABLE_MS(port, termios->c_cflag))
		lab_enable_ms(port);

	/* The divisors take effect with the next write of LCRH. */
	cr = lab_read(lp, UART011_CR);
	lab_write(0, lp, UART011_CR);
	lab_write(quot >> 6, lp, UART011_IBRD);
	lab_write(quot & 0x3f, lp, UART011_FBRD);
	lab_write(lcrh, lp, UART011_LCRH);
	lab_write(cr, lp, UART011_CR);
	spin_unlock_irqrestore(&port->lock, flags);

	if (tty_termios_baud_rate(termios))
		tty_termios_encode_baud_rate(termios, baud, baud);
}

static const char *lab_type(struct uart_port *port)
{
	return port->type == PORT_AMBA ? "PL011-LAB" : NULL;
}

/* The MMIO region is claimed by devm_ioremap_resource() in probe. */
static void lab_release_port(struct uart_port *port)
{
}

static int lab_request_port(struct uart_port *port)
{
	return 0;
}

static void lab_config_port(struct uart_port *port, int flags)
{
	if (flags & UART_CONFIG_TYPE)
		port->type = PORT_AMBA;
}

static int lab_verify_port(struct uart_port *port, struct serial_struct *ser)
{
	if (ser->type != PORT_UNKNOWN && ser->type != PORT_AMBA)
		return -EINVAL;
	if (ser->irq < 0 || ser->irq >= nr_irqs)
		return -EINVAL;
	if (ser->baud_base < 9600)
		return -EINVAL;
	return 0;
}

static const struct uart_ops lab_uart_ops = {
	.tx_empty	= lab_tx_empty,
	.set_mctrl	= lab_set_mctrl,
	.get_mctrl	= lab_get_mctrl,
	.stop_tx	= lab_stop_tx,
	.start_tx	= lab_start_tx,
	.stop_rx	= lab_stop_rx,
	.enable_ms	= lab_enable_ms,
	.break_ctl	= lab_break_ctl,
	.startup	= lab_startup,
	.shutdown	= lab_shutdown,
	.set_termios	= lab_set_termios,
	.type		= lab_type,
	.release_port	= lab_release_port,
	.request_port	= lab_request_port,
	.config_port	= lab_config_port,
	.verify_port	= lab_verify_port,
};

static struct uart_driver lab_uart_driver = {
	.owner		= THIS_MODULE,
	.driver_name	= LAB_DRIVER_NAME,
	.dev_name	= LAB_TTY_NAME,
	.nr		= LAB_NR_PORTS,
};

/* ------------------------------------------------------------ debugfs */

static const struct {
	const char *name;
	unsigned int offset;
} lab_regs[] = {
	/* Not DR: reading it pops the RX FIFO. Not ICR: it is write-only. */
	{ "RSR",	UART01x_RSR },
	{ "FR",		UART01x_FR },
	{ "ILPR",	UART01x_ILPR },
	{ "IBRD",	UART011_IBRD },
	{ "FBRD",	UART011_FBRD },
	{ "LCRH",	UART011_LCRH },
	{ "CR",		UART011_CR },
	{ "IFLS",	UART011_IFLS },
	{ "IMSC",	UART011_IMSC },
	{ "RIS",	UART011_RIS },
	{ "MIS",	UART011_MIS },
	{ "DMACR",	UART011_DMACR },
};

static int lab_registers_show(struct seq_file *s, void *unused)
{
	struct lab_port *lp = s->private;
	int ret, i;

	/* The registers read back only while the UART's clock runs. */
	ret = clk_prepare_enable(lp->clk);
	if (ret)
		return ret;
	seq_printf(s, "base 0x%llx uartclk %u\n",
		   (unsigned long long)lp->port.mapbase, lp->port.uartclk);
	for (i = 0; i < ARRAY_SIZE(lab_regs); i++)
		seq_printf(s, "%-5s 0x%02x 0x%08x\n", lab_regs[i].name,
			   lab_regs[i].offset, lab_read(lp, lab_regs[i].offset));
	clk_disable_unprepare(lp->clk);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(lab_registers);

/* ---------------------------------------------------- probe and remove */

static int lab_probe(struct amba_device *dev, const struct amba_id *id)
{
	struct lab_port *lp;
	void __iomem *base;
	int line, ret;

	lp = devm_kzalloc(&dev->dev, sizeof(*lp), GFP_KERNEL);
	if (!lp)
		return -ENOMEM;
	lp->clk = devm_clk_get(&dev->dev, NULL);
	if (IS_ERR(lp->clk))
		return PTR_ERR(lp->clk);
	base = devm_ioremap_resource(&dev->dev, &dev->res);
	if (IS_ERR(base))
		return PTR_ERR(base);

	line = ida_alloc_max(&lab_ida, LAB_NR_PORTS - 1, GFP_KERNEL);
	if (line < 0)
		return line;

	lp->port.dev = &dev->dev;
	lp->port.mapbase = dev->res.start;
	lp->port.membase = base;
	lp->port.iotype = UPIO_MEM32;
	lp->port.irq = dev->irq[0];
	lp->port.uartclk = clk_get_rate(lp->clk);
	lp->port.fifosize = LAB_FIFO_SIZE;
	lp->port.ops = &lab_uart_ops;
	lp->port.flags = UPF_BOOT_AUTOCONF;
	lp->port.line = line;
	lp->port.has_sysrq = IS_ENABLED(CONFIG_SERIAL_CORE_CONSOLE);
	spin_lock_init(&lp->port.lock);

	/* Quiet the UART until it is opened. */
	lab_write(0, lp, UART011_IMSC);
	lab_write(LAB_ALL_IS, lp, UART011_ICR);

	amba_set_drvdata(dev, lp);
	ret = uart_add_one_port(&lab_uart_driver, &lp->port);
	if (ret) {
		ida_free(&lab_ida, line);
		return ret;
	}
	lp->debugfs = debugfs_create_dir(dev_name(&dev->dev), lab_debugfs_root);
	debugfs_create_file("registers", 0400, lp->debugfs, lp,
			    &lab_registers_fops);
	dev_info(&dev->dev, "%s%d at MMIO 0x%llx (irq %d)\n", LAB_TTY_NAME,
		 line, (unsigned long long)lp->port.mapbase, lp->port.irq);
	return 0;
}

static void lab_remove(struct amba_device *dev)
{
	struct lab_port *lp = amba_get_drvdata(dev);

	debugfs_remove_recursive(lp->debugfs);
	uart_remove_one_port(&lab_uart_driver, &lp->port);
	ida_free(&lab_ida, lp->port.line);
}

static const struct amba_id lab_ids[] = {
	{
		.id	= 0x00041011,	/* ARM PrimeCell PL011 */
		.mask	= 0x000fffff,
	},
	{ 0, 0 },
};
MODULE_DEVICE_TABLE(amba, lab_ids);

static struct amba_driver lab_amba_driver = {
	.drv = {
		.name	= LAB_DRIVER_NAME,
	},
	.id_table	= lab_ids,
	.probe		= lab_probe,
	.remove		= lab_remove,
};

static int __init lab_init(void)
{
	int ret;

	ret = uart_register_driver(&lab_uart_driver);
	if (ret)
		return ret;
	lab_debugfs_root = debugfs_create_dir(LAB_DRIVER_NAME, NULL);
	if (!IS_ENABLED(CONFIG_ARM_AMBA)) {
		pr_info(LAB_DRIVER_NAME ": no AMBA bus on this machine, so no PL011 to bind\n");
		return 0;
	}
	ret = amba_driver_register(&lab_amba_driver);
	if (ret) {
		debugfs_remove_recursive(lab_debugfs_root);
		uart_unregister_driver(&lab_uart_driver);
	}
	return ret;
}

static void __exit lab_exit(void)
{
	if (IS_ENABLED(CONFIG_ARM_AMBA))
		amba_driver_unregister(&lab_amba_driver);
	debugfs_remove_recursive(lab_debugfs_root);
	uart_unregister_driver(&lab_uart_driver);
}

module_init(lab_init);
module_exit(lab_exit);

MODULE_DESCRIPTION("PL011 UART driver for the lab, after amba-pl011");
MODULE_LICENSE("GPL");
